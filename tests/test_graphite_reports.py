"""What reaches a real carbon-cache: Horizon's counters once per HORIZON_REPORT_INTERVAL, summed over it and
stamped with its start; zeros (not gaps) for the counters, exception kinds and algorithms with nothing to
count (docs/graphite.md)."""

from __future__ import annotations

import socket
import time
from collections import defaultdict
from pathlib import Path

import redis

from skyline_analyzer import defaults, keys, synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.exceptions import ExceptionKind, Rejection
from skyline_analyzer.harness import seed_redis
from skyline_analyzer.horizon.counters import NAMES
from tests.carbon_server import CarbonServer
from tests.horizon_process import HorizonProcess, horizon_settings
from tests.support import NO_ALERTS, pickle_frame, wait_until

#: A short interval, so that a test sees several reports.
INTERVAL = 2
PREFIX = "skyline.horizon.e2e."


def logged_reports(log: Path) -> dict[str, list[float]]:
    """Each counter's value in every report the agent logged, in order."""
    reports: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text(errors="replace").splitlines():
        if " :: horizon :: listen." in line:
            for item in line.split(" :: horizon :: ", 1)[1].split(", "):
                name, value = item.rsplit(" ", 1)
                reports[name].append(float(value))
    return reports


def test_the_default_interval_is_a_minute() -> None:
    assert defaults.DEFAULTS["HORIZON_REPORT_INTERVAL"] == 60


def test_horizon_counters_arrive_once_per_interval_summed(make_settings, redis_conn: redis.Redis,
                                                          carbon: CarbonServer) -> None:
    settings_path = horizon_settings(make_settings, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=carbon.line_port,
                                     HORIZON_REPORT_INTERVAL=INTERVAL)
    horizon = HorizonProcess(settings_path)
    received = PREFIX + "listen.pickle_datapoints_received"
    sent = 0
    try:
        now = int(time.time())
        with socket.create_connection(horizon.address("PICKLE_PORT")) as relay:
            # Bursts of different sizes spread over several intervals: a sampled counter would not add up.
            for burst in range(5):
                count = 7 * (burst + 1)
                relay.sendall(pickle_frame([(f"burst.{burst}", (now - 100 + i, float(i))) for i in range(count)]))
                sent += count
                time.sleep(1.3)
        # Before the stop: the periodic reports alone carry every datapoint.
        assert wait_until(lambda: sum(carbon.values(received)) == sent, timeout=30), carbon.points(received)
        periodic = carbon.points(received)
    finally:
        assert horizon.stop() == 0
    assert sent == 105
    stamps = [stamp for stamp, _ in periodic]
    assert len(stamps) >= 3, periodic
    assert all(stamp % INTERVAL == 0 for stamp in stamps), "each report is stamped with its interval's start"
    assert sum(1 for _, value in periodic if value) >= 2, "the bursts were counted in more than one report"

    # Every report, the one at stop included, arrived under its own stamp: nothing overwritten.
    reports = logged_reports(horizon.log)
    assert set(NAMES) <= set(reports)
    for name in NAMES:
        assert wait_until(lambda name=name: carbon.values(PREFIX + name) == reports[name], timeout=30), (
            name, carbon.points(PREFIX + name), reports[name])
    assert sum(reports["listen.pickle_datapoints_received"]) == sent
    # Counters with nothing to count are sent as zeros every report.
    for reason in Rejection:
        values = carbon.values(f"{PREFIX}listen.rejected.{reason}")
        assert values and set(values) == {0}, reason
    assert set(carbon.values(PREFIX + "listen.udp_datapoints_received")) == {0}


def test_a_run_sends_zeros_for_every_exception_kind_and_algorithm(load_settings, redis_conn: redis.Redis,
                                                                 carbon: CarbonServer) -> None:
    metrics = synthetic.make_metrics(8, int(time.time()), anomalous=1, points=300)
    seed_redis(redis_conn, metrics, "metrics.")
    redis_conn.sadd(keys.unique_metrics("metrics."), "metrics.deleted.by_roomba")
    settings = load_settings(**NO_ALERTS, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=carbon.line_port,
                             SERVER_METRICS_NAME="zeros")
    report = Analyzer(settings).run_once()
    assert report is not None
    namespace = settings.graphite_namespace("analyzer")

    exceptions = {kind: carbon.wait_for(f"{namespace}.exceptions.{kind}") for kind in ExceptionKind}
    assert exceptions == {kind: [report.exceptions.get(kind, 0)] for kind in ExceptionKind}
    assert exceptions[ExceptionKind.DELETED_BY_ROOMBA] == [1]
    assert exceptions[ExceptionKind.UNDECODABLE_NAME] == [0]

    breakdown = {alg: carbon.wait_for(f"{namespace}.anomaly_breakdown.{alg}") for alg in settings.ALGORITHMS}
    assert breakdown == {alg: [report.anomaly_breakdown.get(alg, 0)] for alg in settings.ALGORITHMS}
    assert report.total_anomalies == 1
    assert [0] in breakdown.values(), "an algorithm that voted for nothing is sent as 0"
    assert any(values != [0] for values in breakdown.values())
