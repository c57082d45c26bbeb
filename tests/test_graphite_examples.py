"""The Graphite examples of etc/graphite/ (docs/graphite.md) in real daemons: a carbon-cache that creates
whisper files with the example schemas and aggregation, and a carbon-relay configured by the example relay
section and rules that feeds both a carbon-cache and a real Horizon."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from skyline_analyzer.codec import decode_pairs
from skyline_analyzer.harness import stop
from tests.carbon_server import CarbonServer
from tests.horizon_process import HorizonProcess, horizon_settings
from tests.support import REPO, free_port, wait_until

EXAMPLES = REPO / "etc" / "graphite"
MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR = [(60, 30 * 86400), (600, 365 * 86400)]
MINUTE_FOR_7_DAYS_THEN_10_MINUTES_FOR_A_YEAR = [(60, 7 * 86400), (600, 365 * 86400)]


class ExampleCarbon(CarbonServer):
    """A carbon-cache using the example storage-schemas.conf and storage-aggregation.conf."""

    def _write_config(self) -> None:
        super()._write_config()
        for name in ("storage-schemas.conf", "storage-aggregation.conf"):
            shutil.copy(EXAMPLES / name, self.directory / name)


@pytest.fixture
def example_carbon(tmp_path: Path) -> Iterator[ExampleCarbon]:
    server = ExampleCarbon(tmp_path / "carbon")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(("metric", "method", "retentions"), [
    ("skyline.horizon.e2e.listen.pickle_datapoints_received", "sum", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("skyline.horizon.listen.rejected.name_too_long", "sum", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("skyline.horizon.e2e.worker.datapoints_written", "sum", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("skyline.horizon.e2e.agent.child_deaths", "sum", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("skyline.horizon.listener.worker.queue_size", "average", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("skyline.analyzer.e2e.exceptions.Stale", "average", MINUTE_FOR_30_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
    ("stats.web.requests", "average", MINUTE_FOR_7_DAYS_THEN_10_MINUTES_FOR_A_YEAR),
])
def test_the_example_schemas_give_skyline_a_minute_and_sum_horizon_counts(example_carbon: ExampleCarbon, metric: str,
                                                                         method: str, retentions: list) -> None:
    with socket.create_connection(("127.0.0.1", example_carbon.line_port)) as conn:
        conn.sendall(f"{metric} 3 {int(time.time()) // 60 * 60}\n".encode())
    assert wait_until(lambda: example_carbon.header(metric), timeout=30), example_carbon.metrics()
    info = example_carbon.header(metric)
    assert info["aggregationMethod"] == method
    assert [(a["secondsPerPoint"], a["retention"]) for a in info["archives"]] == retentions
    assert example_carbon.wait_for(metric) == [3]


def relay_config(directory: Path, line_port: int, cache_pickle_port: int, horizon_port: int) -> Path:
    """The example [relay] section and rules, on loopback with these ports; returns carbon.conf's path."""

    def localised(text: str) -> str:
        return (text.replace("0.0.0.0", "127.0.0.1").replace("= 2013", f"= {line_port}")
                .replace("= 2014", f"= {free_port()}").replace("127.0.0.1:2004:a", f"127.0.0.1:{cache_pickle_port}:a")
                .replace("127.0.0.1:2024", f"127.0.0.1:{horizon_port}"))

    for sub in ("log", "run", "storage"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # carbon's start-up requires a storage-schemas.conf even of a relay.
    shutil.copy(EXAMPLES / "storage-schemas.conf", directory)
    (directory / "relay-rules.conf").write_text(localised((EXAMPLES / "relay-rules.conf").read_text()))
    conf = directory / "carbon.conf"
    conf.write_text(
        "[cache]\n"
        f"STORAGE_DIR = {directory / 'storage'}/\n"
        f"CONF_DIR = {directory}/\n"
        f"LOG_DIR = {directory / 'log'}/\n"
        f"PID_DIR = {directory / 'run'}/\n"
        "USER =\n"
        "CARBON_METRIC_INTERVAL = 0\n"
        + localised((EXAMPLES / "carbon-relay.conf").read_text())
    )
    return conf


def test_the_example_relay_feeds_carbon_and_horizon(make_settings, redis_conn: redis.Redis, carbon: CarbonServer,
                                                    tmp_path: Path) -> None:
    horizon = HorizonProcess(horizon_settings(make_settings))
    line_port = free_port()
    directory = tmp_path / "relay"
    conf = relay_config(directory, line_port, carbon.pickle_port, horizon.settings.PICKLE_PORT)
    relay = subprocess.Popen(
        [shutil.which("carbon-relay") or "/usr/bin/carbon-relay", f"--config={conf}",
         f"--pidfile={directory / 'run' / 'relay.pid'}", f"--logdir={directory / 'log'}", "--nodaemon", "start"],
        stdout=(directory / "stdout.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", line_port), timeout=0.5).close()
            except OSError:
                return False
            return True

        assert wait_until(listening, timeout=30, interval=0.2), (directory / "stdout.log").read_text()[-2000:]
        now = int(time.time())
        pairs = [(now - 60 * k, float(k)) for k in range(5, 0, -1)]
        lines = [f"carbon.agents.example.cpuUsage 1 {now}"] + [f"web.requests {v} {ts}" for ts, v in pairs]
        with socket.create_connection(("127.0.0.1", line_port)) as client:
            client.sendall("".join(line + "\n" for line in lines).encode())

        def in_redis() -> bool:
            raw = redis_conn.get("metrics.web.requests")
            return raw is not None and len(decode_pairs(raw)) == len(pairs)

        assert wait_until(in_redis, timeout=30, interval=0.2), "the relay sent nothing to Horizon"
        assert decode_pairs(redis_conn.get("metrics.web.requests")) == pairs
        assert carbon.wait_for("web.requests", count=len(pairs)) == [v for _, v in pairs]
        assert carbon.wait_for("carbon.agents.example.cpuUsage") == [1]
        assert redis_conn.get("metrics.carbon.agents.example.cpuUsage") is None, "carbon.* goes to the cache only"
    finally:
        stop(relay, timeout=15)
        assert horizon.stop() == 0
