"""The Analyzer against hostile Redis content and dying workers: real redis-server, real forked workers,
real carbon-cache, real log files."""

from __future__ import annotations

import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
import redis

from skyline_analyzer import config, keys, logs, synthetic
from skyline_analyzer.analyzer import worker
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.exceptions import ExceptionKind
from skyline_analyzer.harness import seed_redis
from tests.support import NO_ALERTS

COUNT = 20


@pytest.fixture
def load(load_settings: Callable[..., config.Settings]) -> Callable[..., config.Settings]:
    return lambda **overrides: load_settings(**{**NO_ALERTS, "ANALYZER_PROCESSES": 2, **overrides})


@pytest.fixture
def seeded(redis_conn: redis.Redis) -> dict:
    metrics = synthetic.make_metrics(COUNT, int(time.time()), anomalous=2, points=300)
    seed_redis(redis_conn, metrics, "metrics.")
    return metrics


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[Path]:
    """The package's records in a real log file with the daemon's formatter."""
    (tmp_path / "log").mkdir(exist_ok=True)
    handler = logs.setup(tmp_path / "log", "analyzer")
    yield logs.log_file(tmp_path / "log", "analyzer")
    logger = logging.getLogger(logs.PACKAGE_LOGGER)
    logger.removeHandler(handler)
    # logs.setup stops propagation for the daemons; later tests read records through pytest's handler.
    logger.propagate = True
    handler.close()


def test_an_undecodable_member_is_counted_and_skipped(load, seeded, redis_conn, logged):
    redis_conn.sadd(keys.unique_metrics("metrics."), b"metrics.\xff\xfebad\n")
    report = Analyzer(load()).run_once()
    assert report is not None
    assert report.total_metrics == COUNT + 1
    assert report.exceptions[ExceptionKind.UNDECODABLE_NAME] == 1
    assert report.total_analyzed == COUNT - sum(n for k, n in report.exceptions.items() if k != "UndecodableName")
    assert report.total_anomalies >= 1
    text = logged.read_text()
    assert "not UTF-8: b'metrics.\\xff\\xfebad\\n'" in text


def test_a_name_cannot_forge_a_log_line_or_write_escape_sequences(load, redis_conn, logged):
    forged = "2026-01-01 00:00:00 :: 1 :: forged record"
    name = f"metrics.evil\n{forged}\x1b[31m"
    redis_conn.sadd(keys.unique_metrics("metrics."), name)
    redis_conn.set(name, b"\xc1 not msgpack")
    report = Analyzer(load(ANALYZER_PROCESSES=1)).run_once()
    assert report is not None and report.exceptions == {"Other": 1}
    text = logged.read_text()
    assert "metrics.evil\\n2026-01-01 00:00:00 :: 1 :: forged record\\x1b[31m" in text
    assert not any(line.startswith(forged) for line in text.splitlines())
    assert "\x1b" not in text


def _die_in_worker_two(how: str) -> Callable[..., None]:
    original = worker.spin_process

    def spin_process(i: int, *args: object) -> None:
        if i == 2:
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        original(i, *args)

    return spin_process


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_metrics_a_worker_never_analysed_are_unprocessed_not_analysed(how, load, seeded, carbon, monkeypatch):
    settings = load(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=carbon.line_port, MAX_ANALYZER_PROCESS_RUNTIME=3,
                    SERVER_METRICS_NAME=f"hostile-{how}")
    # Workers are forked from this process: worker 2 inherits the fault.
    monkeypatch.setattr(worker, "spin_process", _die_in_worker_two(how))
    report = Analyzer(settings).run_once()
    assert report is not None
    assert report.unprocessed == COUNT // 2
    assert report.total_analyzed == COUNT - sum(report.exceptions.values()) - COUNT // 2
    name = f"{settings.graphite_namespace('analyzer')}.unprocessed"
    assert carbon.wait_for(name) == [COUNT // 2]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_memory_and_descriptors_stay_flat_over_300_runs(load, redis_conn):
    metrics = synthetic.make_metrics(6, int(time.time()), anomalous=1, points=120)
    seed_redis(redis_conn, metrics, "metrics.")
    redis_conn.sadd(keys.unique_metrics("metrics."), b"metrics.\xff")
    redis_conn.set("metrics.corrupt", msgpack.packb("x"))
    redis_conn.sadd(keys.unique_metrics("metrics."), "metrics.corrupt")
    analyzer = Analyzer(load(ANALYZER_PROCESSES=2, ENABLE_ALGORITHM_RUN_METRICS=True))
    for _ in range(30):
        analyzer.run_once()
    fds, rss = _open_fds(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(300):
        report = analyzer.run_once()
        assert report is not None and report.exceptions["Other"] == 1
    assert _open_fds() == fds
    # Peak RSS in KiB: the parent keeps nothing from one run to the next.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 8 * 1024
