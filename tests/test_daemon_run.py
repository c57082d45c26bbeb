"""One Analyzer run at a time (``Analyzer.run_once``) against a real redis-server, forking real workers."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

import skyline_analyzer
from skyline_analyzer import codec, config, keys, logs, synthetic
from skyline_analyzer.analyzer import worker
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import anomaly_dump_path
from skyline_analyzer.harness import seed_redis
from skyline_analyzer.slices import assigned_slice
from tests.alert_receivers import SmtpReceiver
from tests.support import NO_ALERTS

ANOMALOUS = 4
COUNT = 40


@pytest.fixture
def daemon_settings(load_settings, tmp_path):
    """Settings for a run: private Redis, files in tmp, no Graphite, no alerting."""

    def build(**overrides):
        values = {
            **NO_ALERTS,
            "ANALYZER_PROCESSES": 2,
            "ANOMALY_DUMP": str(tmp_path / "dump" / "anomalies.json"),
            **overrides,
        }
        return load_settings(**values)

    return build


@pytest.fixture
def seeded(redis_conn):
    """COUNT synthetic metrics ending now, the first ANOMALOUS with a spike; returns their series."""
    metrics = synthetic.make_metrics(COUNT, int(time.time()), anomalous=ANOMALOUS, points=300)
    seed_redis(redis_conn, metrics, "metrics.")
    return metrics


def spiked(metrics):
    return sorted(list(metrics)[:ANOMALOUS])


def test_a_run_reports_counts_anomalies_and_writes_the_dump(daemon_settings, seeded, redis_conn):
    settings = daemon_settings()
    report = Analyzer(settings).run_once()
    flat = [name for name in seeded if ".flat." in name]
    assert report.total_metrics == COUNT
    assert report.exceptions == {"Boring": len(flat)}
    assert report.total_analyzed == COUNT - len(flat)
    assert sorted(a.base_name for a in report.anomalies) == spiked(seeded)
    for anomaly in report.anomalies:
        assert anomaly.value == seeded[anomaly.base_name][-1][1]
        assert anomaly.timestamp == seeded[anomaly.base_name][-1][0]
    assert sum(report.anomaly_breakdown.values()) == sum(len(a.triggered) for a in report.anomalies)
    dump = json.loads(anomaly_dump_path(settings).read_text())
    assert dump == [[seeded[n][-1][1], n, seeded[n][-1][0]] for n in spiked(seeded)]
    assert redis_conn.ttl(keys.ANALYZER_HEARTBEAT) in range(110, 121)
    boring = {m.decode() for m in redis_conn.smembers(keys.ANALYZER_BORING)}
    assert {m for m in boring if not m.startswith("_updated_at_")} == set(flat)
    assert len([m for m in boring if m.startswith("_updated_at_")]) == 1


@pytest.mark.parametrize("flush_at", [1, 3, 10_000])
def test_every_worker_adds_all_its_exception_names_whenever_it_sends_them(daemon_settings, redis_conn, monkeypatch,
                                                                           flush_at):
    now = int(time.time())
    metrics = synthetic.make_metrics(30, now, points=300)
    short = {f"short.{n}": [(now - 60 * k, 1.0 + k) for k in range(3)] for n in range(7)}
    seed_redis(redis_conn, {**metrics, **short}, "metrics.")
    monkeypatch.setattr(worker, "SETS_FLUSH_NAMES", flush_at)  # inherited by the forked workers
    report = Analyzer(daemon_settings(MIN_TOLERABLE_LENGTH=10)).run_once()
    flat = {name for name in metrics if ".flat." in name}
    assert report.exceptions == {"Boring": len(flat), "TooShort": len(short)} and len(flat) > 3
    for key, expected in ((keys.ANALYZER_BORING, flat), (keys.ANALYZER_TOO_SHORT, set(short))):
        members = {m.decode() for m in redis_conn.smembers(key)}
        assert {m for m in members if not m.startswith("_updated_at_")} == expected


def test_the_dump_is_rewritten_empty_and_can_be_jsonp(daemon_settings, redis_conn):
    seed_redis(redis_conn, synthetic.make_metrics(3, int(time.time()), points=200), "metrics.")
    settings = daemon_settings(ANOMALY_DUMP_JSONP=True)
    path = anomaly_dump_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("handle_data([[1, \"old.anomaly\", 2]])")
    Analyzer(settings).run_once()
    assert path.read_text() == "handle_data([])"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_relative_anomaly_dump_resolves_against_the_settings_file_never_the_package(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "settings.py"
    path.write_text("ANOMALY_DUMP = 'webapp/static/dump/anomalies.json'\n")
    settings = config.load(path)
    assert anomaly_dump_path(settings) == tmp_path / "etc" / "webapp" / "static" / "dump" / "anomalies.json"
    package = Path(skyline_analyzer.__file__).resolve().parent
    assert package not in anomaly_dump_path(config.Settings({})).parents
    assert anomaly_dump_path(config.Settings({})) == Path("/var/lib/skyline/webapp/anomalies.json")


def test_bad_values_are_counted_and_never_stop_the_others(daemon_settings, seeded, redis_conn, caplog):
    now = int(time.time())
    good = synthetic.make_series("noisy", now, points=100)
    redis_conn.set("metrics.bad.truncated", codec.encode(good)[:-3])
    redis_conn.set("metrics.bad.garbage", b"\xc1\xc1\xc1")
    # Only the start of one datapoint: no complete object at all.
    redis_conn.set("metrics.bad.partial", b"\x92\x01")
    redis_conn.set("metrics.bad.nan", codec.encode([*good[:-1], [now, float("nan")]]))
    redis_conn.set("metrics.bad.inf", codec.encode([*good[:-1], [now, float("inf")]]))
    redis_conn.set("metrics.bad.text", codec.encode([*good[:-1], [now, "12"]]))
    bad = ["bad.truncated", "bad.garbage", "bad.partial", "bad.nan", "bad.inf", "bad.text"]
    # In unique_metrics but without a value: deleted by Roomba between SMEMBERS and MGET.
    redis_conn.sadd("metrics.unique_metrics", "metrics.bad.deleted", *(f"metrics.{n}" for n in bad))
    with caplog.at_level(logging.ERROR):
        report = Analyzer(daemon_settings(ANALYZER_PROCESSES=1)).run_once()
    flat = [name for name in seeded if ".flat." in name]
    assert report.exceptions == {"Boring": len(flat), "Other": 6, "DeletedByRoomba": 1}
    assert report.total_metrics == COUNT + 7
    assert report.total_analyzed == COUNT - len(flat)
    assert sorted(a.base_name for a in report.anomalies) == spiked(seeded)


def test_worker_log_names_the_bad_metric(daemon_settings, redis_conn):
    """The error line for an undecodable value names the metric and the reason (read from the log file)."""
    settings = daemon_settings(ANALYZER_PROCESSES=1)
    redis_conn.set("metrics.bad.nan", codec.encode([[int(time.time()), float("nan")]]))
    redis_conn.sadd("metrics.unique_metrics", "metrics.bad.nan")
    handler = logs.setup(settings.LOG_PATH, "analyzer")
    try:
        Analyzer(settings).run_once()
    finally:
        logging.getLogger(logs.PACKAGE_LOGGER).removeHandler(handler)
        logging.getLogger(logs.PACKAGE_LOGGER).propagate = True
        handler.close()
    text = (logs.log_file(settings.LOG_PATH, "analyzer")).read_text()
    assert "error :: metrics.bad.nan not analysed: metrics.bad.nan: datapoint 0 has a non-finite value: nan" in text


def test_exception_sets_refresh_on_their_timer_without_mirage(daemon_settings, seeded, redis_conn):
    settings = daemon_settings()
    analyzer = Analyzer(settings)
    redis_conn.sadd(keys.ANALYZER_BORING, "gone.metric", "_updated_at_20000101000000")
    redis_conn.sadd(keys.ALERT_ON_STALE_METRICS, "metrics.was.stale")
    analyzer.run_once()
    boring = {m.decode() for m in redis_conn.smembers(keys.ANALYZER_BORING)}
    assert "gone.metric" not in boring and "_updated_at_20000101000000" not in boring
    assert not redis_conn.exists(keys.ALERT_ON_STALE_METRICS)
    assert 0 < redis_conn.ttl(keys.ANALYZER_SETS_REFRESH) <= keys.ANALYZER_SETS_REFRESH_TTL
    # Within the period the sets accumulate, but the marker stays single.
    redis_conn.sadd(keys.ANALYZER_BORING, "gone.metric")
    time.sleep(1.1)
    analyzer.run_once()
    boring = {m.decode() for m in redis_conn.smembers(keys.ANALYZER_BORING)}
    assert "gone.metric" in boring
    assert len([m for m in boring if m.startswith("_updated_at_")]) == 1
    redis_conn.delete(keys.ANALYZER_SETS_REFRESH)
    analyzer.run_once()
    assert b"gone.metric" not in redis_conn.smembers(keys.ANALYZER_BORING)


def run_capturing_graphite(daemon_settings, **overrides):
    """One run with carbon at a loopback listener; the run's report and ``{metric: value}`` it sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(10)
    settings = daemon_settings(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=port, SERVER_METRICS_NAME="host1",
                               **overrides)
    try:
        report = Analyzer(settings).run_once()
        conn, _ = listener.accept()
        conn.settimeout(10)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.close()
    finally:
        listener.close()
    sent = {}
    for line in data.decode().splitlines():
        name, value, stamp = line.split(" ")
        assert abs(int(stamp) - time.time()) < 30
        sent[name] = value
    return settings, report, sent


def test_timing_metrics_and_canary(daemon_settings, seeded, redis_conn, tmp_path):
    now = int(time.time())
    redis_conn.set("metrics.statsd.numStats", codec.encode([[now - 7200, 1], [now, 2]]))
    redis_conn.sadd("metrics.unique_metrics", "metrics.statsd.numStats")
    settings, report, sent = run_capturing_graphite(daemon_settings)
    ns = "skyline.analyzer.host1."
    assert sent[ns + "total_metrics"] == str(COUNT + 1)
    assert sent[ns + "total_analyzed"] == str(report.total_analyzed)
    assert sent[ns + "total_anomalies"] == str(ANOMALOUS)
    assert sent[ns + "run_time"] == f"{float(sent[ns + 'run_time']):.2f}"
    assert sent[ns + "exceptions.Boring"] == str(report.exceptions["Boring"])
    for algorithm, count in report.anomaly_breakdown.items():
        assert sent[f"{ns}anomaly_breakdown.{algorithm}"] == str(count)
    assert sent[ns + "duration"] == "2.0"
    assert float(sent[ns + "projected"]) == pytest.approx(12 * report.run_time, rel=0.5, abs=0.5)
    times_run = int(sent[ns + "algorithm_breakdown.histogram_bins.timing.times_run"])
    assert times_run == report.total_analyzed
    for algorithm in settings.ALGORITHMS:
        for part in ("total_time", "median_time"):
            assert float(sent[f"{ns}algorithm_breakdown.{algorithm}.timing.{part}"]) >= 0


def test_mirage_hand_offs_are_reported(daemon_settings, seeded, redis_conn, tmp_path):
    # A 4-element tuple hands every anomalous synthetic metric to Mirage (no alert: full-duration off).
    checks = tmp_path / "mirage"
    checks.mkdir()
    _, report, sent = run_capturing_graphite(
        daemon_settings, ENABLE_ALERTS=True, ENABLE_MIRAGE=True, ENABLE_FULL_DURATION_ALERTS=False,
        MIRAGE_CHECK_PATH=str(checks), ALERTS=[("synthetic", "syslog", 120, 24)],
    )
    assert sent["skyline.analyzer.host1.sent_to_mirage"] == str(ANOMALOUS) == str(report.total_anomalies)
    assert sent["skyline.analyzer.host1.mirage_metrics"] == str(COUNT)
    assert len(list(checks.glob("*.txt"))) == ANOMALOUS


@pytest.mark.parametrize("canary", [b"", b"\xc1", codec.encode([[1, 1]])])
def test_a_broken_canary_costs_a_log_line(daemon_settings, seeded, redis_conn, caplog, canary):
    redis_conn.set("metrics.statsd.numStats", canary)
    with caplog.at_level(logging.ERROR):
        report = Analyzer(daemon_settings()).run_once()
    assert report.total_metrics == COUNT
    assert any("canary" in r.getMessage() for r in caplog.records)


def test_carbon_not_listening_costs_a_log_line(daemon_settings, seeded, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.ERROR):
        report = Analyzer(daemon_settings(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=port)).run_once()
    assert report.total_anomalies == ANOMALOUS
    assert any("cannot send" in r.getMessage() and "Graphite" in r.getMessage() for r in caplog.records)


def test_redis_killed_and_restarted_between_runs(daemon_settings, seeded, redis_server):
    settings = daemon_settings()
    analyzer = Analyzer(settings)
    assert analyzer.run_once().total_metrics == COUNT
    redis_server.stop()
    try:
        started = time.monotonic()
        assert analyzer.run_once() is None
        assert time.monotonic() - started < 5
    finally:
        redis_server.start()
    # No persistence: the restarted server is empty until Horizon (here: the test) writes again.
    seed_redis(redis_server.client(), seeded, "metrics.")
    report = analyzer.run_once()
    assert report.total_metrics == COUNT
    assert sorted(a.base_name for a in report.anomalies) == spiked(seeded)


def test_no_metrics_waits_and_reports_nothing(daemon_settings, redis_conn, monkeypatch):
    analyzer = Analyzer(daemon_settings())
    waits = []
    monkeypatch.setattr(analyzer, "sleep", waits.append)
    assert analyzer.run_once() is None
    assert waits == [10.0]


def test_smtp_alerter_metrics_are_published(daemon_settings, seeded, redis_conn):
    settings = daemon_settings(ALERTS=[("synthetic.noisy", "smtp", 1800), ("synthetic.trend", "syslog", 1800)])
    Analyzer(settings).run_once()
    published = {m.decode() for m in redis_conn.smembers(keys.SMTP_ALERTER_METRICS)}
    assert published == {n for n in seeded if n.startswith("synthetic.noisy")}


def test_smtp_alerter_metrics_follow_the_metrics_from_run_to_run(daemon_settings, seeded, redis_conn):
    """Only changes are sent after the first run, yet the set is always exactly the matched names, even
    when someone else changed it or a write failed in between."""
    settings = daemon_settings(ALERTS=[("synthetic.noisy", "smtp", 1800)], ALERT_MATCH_CACHE_SIZE=3)
    analyzer = Analyzer(settings)

    def published():
        analyzer.run_once()
        return {m.decode() for m in redis_conn.smembers(keys.SMTP_ALERTER_METRICS)}

    noisy = {n for n in seeded if n.startswith("synthetic.noisy")}
    assert published() == noisy
    gone = min(noisy)
    redis_conn.srem(keys.unique_metrics("metrics."), f"metrics.{gone}")
    redis_conn.sadd(keys.unique_metrics("metrics."), "metrics.synthetic.noisy.new")
    assert published() == noisy - {gone} | {"synthetic.noisy.new"}
    redis_conn.sadd(keys.SMTP_ALERTER_METRICS, "foreign")
    assert published() == noisy - {gone} | {"synthetic.noisy.new"}
    redis_conn.delete(keys.SMTP_ALERTER_METRICS)
    assert published() == noisy - {gone} | {"synthetic.noisy.new"}


def test_more_processes_than_metrics(daemon_settings, redis_conn):
    metrics = synthetic.make_metrics(3, int(time.time()), anomalous=3, points=200)
    seed_redis(redis_conn, metrics, "metrics.")
    report = Analyzer(daemon_settings(ANALYZER_PROCESSES=5)).run_once()
    assert report.total_metrics == 3
    assert sorted(a.base_name for a in report.anomalies) == sorted(metrics)


@pytest.mark.parametrize("count", [0, 1, 5, 7, 100, 101])
@pytest.mark.parametrize("processes", [1, 2, 3, 4])
def test_slices_cover_every_metric_once(count, processes):
    metrics = [f"m{i}" for i in range(count)]
    spawned = range(1, min(processes, count) + 1)
    covered = [m for i in spawned for m in assigned_slice(metrics, i, processes)]
    assert covered == metrics


def test_second_order_history_is_written_by_the_daemon(daemon_settings, seeded, redis_conn):
    Analyzer(daemon_settings(ENABLE_SECOND_ORDER=True)).run_once()
    for name in spiked(seeded):
        history = msgpack.unpackb(redis_conn.get(keys.trigger_history(f"metrics.{name}")))
        assert len(history) == 1


def test_alerts_and_stale_digest_run_from_the_loop(daemon_settings, redis_conn):
    """Both alerting steps on: the spike is mailed, the metric in the stale window is digested once."""
    now = int(time.time())
    seed_redis(redis_conn, {
        "shop.spiking": synthetic.make_series("noisy", now, points=300, seed=1, spike=True),
        "shop.quiet": synthetic.make_series("noisy", now - 400, points=300, seed=2),
    }, "metrics.")
    with SmtpReceiver() as smtp:
        settings = daemon_settings(
            ENABLE_ALERTS=True, ALERT_ON_STALE_METRICS=True, ALERTS=[("shop", "smtp", 600)],
            SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, PLOT_REDIS_DATA=False,
            SMTP_OPTS={"sender": "skyline@example.org", "recipients": {"shop": ["oncall@example.org"]},
                       "default_recipient": ["oncall@example.org"], "embed-images": False},
        )
        analyzer = Analyzer(settings)
        report = analyzer.run_once()
        assert [a.base_name for a in report.anomalies] == ["shop.spiking"]
        mails = smtp.wait_for(2)
        subjects = sorted(m.message["Subject"] for m in mails)
        assert len(subjects) == 2, subjects
        assert any("shop.spiking" in s for s in subjects)
        assert redis_conn.smembers(keys.ALERT_ON_STALE_METRICS) == {b"metrics.shop.quiet"}
        assert redis_conn.exists(keys.last_alert("stale", "shop.quiet"))
        # The next run neither re-alerts (EXPIRATION_TIME) nor re-digests (last_alert.stale.*).
        assert analyzer.run_once().total_anomalies == 1
        time.sleep(0.3)
        assert len(smtp.mails) == 2
        analyzer.link.close()


PARENT_IMPORTS = """
import sys
from skyline_analyzer import config
from skyline_analyzer.analyzer import worker
from skyline_analyzer.analyzer.daemon import Analyzer
assert "statsmodels" not in sys.modules
report = Analyzer(config.load()).run_once()
print(report.total_metrics, "statsmodels.tsa.stattools" in sys.modules)
"""


@pytest.mark.parametrize("with_ks_test", [True, False])
def test_the_parent_imports_what_the_algorithms_need_before_forking(make_settings, seeded, tmp_path, with_ks_test):
    """Workers are forked fresh every run: statsmodels imported in the parent is imported once, not per run."""
    algorithms = list(config.load().ALGORITHMS)
    if not with_ks_test:
        algorithms.remove("ks_test")
    path = make_settings(**NO_ALERTS, ANOMALY_DUMP=str(tmp_path / "anomalies.json"), ALGORITHMS=algorithms,
                         CONSENSUS=len(algorithms) - 1)
    completed = subprocess.run([sys.executable, "-c", PARENT_IMPORTS], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "SKYLINE_SETTINGS": str(path)})
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == [str(COUNT), str(with_ks_test)]
