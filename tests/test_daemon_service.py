"""The daemon as a service: ``bin/analyzer.d`` and ``skyline-analyzer run`` as real processes, with a real
redis-server and a real carbon-cache whose whisper files are read back."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from skyline_analyzer import config, keys, synthetic
from skyline_analyzer.cli.check import check_series
from skyline_analyzer.detection.series import Series
from skyline_analyzer.harness import seed_redis
from tests.support import (
    NO_ALERTS,
    REPO,
    SCRIPT,
    alive,
    freeze_first_worker,
    kill_process,
    settings_env,
    wait_for_log,
)

ANALYZER_D = REPO / "bin" / "analyzer.d"


class Service:
    """Runs bin/analyzer.d with SKYLINE_SETTINGS pointing at a test settings file; stops it at teardown."""

    def __init__(self, settings_path: Path) -> None:
        self.env = settings_env(settings_path, SKYLINE_CONF="/nonexistent")
        self.settings = config.load(settings_path)
        self.log = Path(self.settings.LOG_PATH) / "analyzer.log"
        self.pid_file = Path(self.settings.PID_PATH) / "analyzer.pid"

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(ANALYZER_D), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def cleanup(self) -> None:
        if self.pid_file.exists():
            self("stop")
        if self.pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                os.killpg(int(self.pid_file.read_text().split()[0]), signal.SIGKILL)


@pytest.fixture
def service(make_settings):
    started = []

    def build(**overrides):
        values = {**NO_ALERTS, "ANALYZER_OPTIMUM_RUN_DURATION": 1, "ANALYZER_PROCESSES": 2, **overrides}
        svc = Service(make_settings(**values))
        started.append(svc)
        return svc

    yield build
    for svc in started:
        svc.cleanup()


def expected_outcome(metrics: dict, settings: config.Settings, now: float) -> dict:
    series = {f"metrics.{name}": Series.from_pairs(pairs) for name, pairs in metrics.items()}
    return check_series(series, settings, now)


def test_end_to_end_with_carbon(service, carbon, redis_conn, tmp_path):
    now = int(time.time())
    metrics = synthetic.make_metrics(60, now, anomalous=4, points=400)
    metrics["statsd.numStats"] = [[now - 3600, 10], [now - 60, 11], [now, 12]]
    seed_redis(redis_conn, metrics, "metrics.")
    redis_conn.set("metrics.broken.value", b"\x93\x01")
    redis_conn.sadd("metrics.unique_metrics", "metrics.broken.value", "metrics.deleted.by_roomba")
    dump = tmp_path / "anomalies.json"
    svc = service(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=carbon.line_port, SERVER_METRICS_NAME="e2e",
                  ANOMALY_DUMP=str(dump))
    assert svc("status").returncode == 3

    started = svc("start")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int(svc.pid_file.read_text())
    assert f"analyzer started with pid {pid}" in started.stdout
    status = svc("status")
    assert (status.returncode, status.stdout.strip()) == (0, f"analyzer is running with pid {pid}")
    assert svc("start").returncode == 0

    ns = "skyline.analyzer.e2e."
    expected = expected_outcome(metrics, svc.settings, time.time())
    exceptions = Counter(r["exception"] for r in expected.values() if r["exception"])
    anomalous = {name for name, r in expected.items() if r["anomalous"]}
    breakdown = Counter(alg for r in expected.values() if r["anomalous"] for alg in r["triggered"])
    assert len(anomalous) == 4 and exceptions["Boring"] == 10
    analysed = len(metrics) + 2 - sum(exceptions.values()) - 2

    def last(metric: str) -> float:
        values = carbon.wait_for(ns + metric)
        assert values, f"{ns + metric} never arrived; carbon has {carbon.metrics()}"
        return values[-1]

    assert last("total_metrics") == len(metrics) + 2
    assert last("total_analyzed") == analysed
    assert last("total_anomalies") == 4
    assert 0 <= last("run_time") < 30
    assert last("exceptions.Boring") == exceptions["Boring"]
    assert last("exceptions.Other") == 1
    assert last("exceptions.DeletedByRoomba") == 1
    for algorithm, count in breakdown.items():
        assert last(f"anomaly_breakdown.{algorithm}") == count
    assert last("algorithm_breakdown.histogram_bins.timing.times_run") == analysed
    for algorithm in svc.settings.ALGORITHMS:
        assert last(f"algorithm_breakdown.{algorithm}.timing.total_time") >= 0
        assert last(f"algorithm_breakdown.{algorithm}.timing.median_time") >= 0
    assert last("duration") == 1.0
    assert last("projected") >= 0

    records = json.loads(dump.read_text())
    assert [r[1] for r in records] == sorted(n.removeprefix("metrics.") for n in anomalous)
    assert all(r == [metrics[r[1]][-1][1], r[1], metrics[r[1]][-1][0]] for r in records)
    assert 0 < redis_conn.ttl(keys.ANALYZER_HEARTBEAT) <= 120
    text = svc.log_text()
    assert "total metrics      :: 63" in text
    assert "error :: metrics.broken.value not analysed" in text

    stopped = svc("stop")
    assert stopped.returncode == 0 and "analyzer has been stopped" in stopped.stdout
    assert not svc.pid_file.exists()
    assert svc("status").returncode == 3
    assert "analyzer stopped" in svc.log_text()


def test_usage_and_stale_pid_file(service):
    svc = service()
    bad = svc("frobnicate")
    assert bad.returncode == 2 and bad.stdout.startswith("Usage:")
    svc.pid_file.write_text("999999999\n")
    status = svc("status")
    assert status.returncode == 1
    assert "is dead and pid file exists" in status.stdout and "pid 999999999 is not running" in status.stdout
    stopped = svc("stop")
    assert stopped.returncode == 0 and "removed the stale pid file" in stopped.stdout
    assert not svc.pid_file.exists()
    svc.pid_file.write_text("garbage\n")
    status = svc("status")
    assert status.returncode == 1 and "it holds no valid pid" in status.stdout
    started = svc("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "removed the stale pid file" in started.stdout and "analyzer started with pid" in started.stdout
    assert svc("status").returncode == 0
    assert svc("stop").returncode == 0
    assert "removed the stale pid file" in svc.log_text()


def wait_gone(pid: int, timeout: float = 10) -> None:
    """Until ``pid`` has exited (a zombie counts as gone: nothing may reap it)."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.05)


def test_start_and_restart_after_kill_9(service):
    svc = service()
    assert svc("start").returncode == 0
    first = int(svc.pid_file.read_text())
    os.kill(first, signal.SIGKILL)
    wait_gone(first)
    status = svc("status")
    assert status.returncode == 1 and f"pid {first} is not running" in status.stdout
    restarted = svc("restart")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "removed the stale pid file" in restarted.stdout
    second = int(svc.pid_file.read_text())
    assert second != first and svc("status").stdout.strip() == f"analyzer is running with pid {second}"
    os.kill(second, signal.SIGKILL)
    wait_gone(second)
    started = svc("start")
    assert started.returncode == 0 and "removed the stale pid file" in started.stdout
    third = int(svc.pid_file.read_text())
    assert third not in (first, second)
    assert svc("stop").returncode == 0 and not svc.pid_file.exists()


def test_a_recycled_pid_is_never_taken_for_the_daemon_nor_signalled(service):
    """A pid file naming a live unrelated process (a ``sleep``; the Analyzer for bin/horizon.d) is stale."""
    svc = service()
    horizon_d = [str(REPO / "bin" / "horizon.d")]
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        svc.pid_file.write_text(f"{sleeper.pid}\n")
        status = svc("status")
        assert status.returncode == 1 and f"pid {sleeper.pid} is another program" in status.stdout
        stopped = svc("stop")
        assert stopped.returncode == 0 and "removed the stale pid file" in stopped.stdout
        assert sleeper.poll() is None
        svc.pid_file.write_text(f"{sleeper.pid}\n")
        started = svc("start")
        assert started.returncode == 0 and "already running" not in started.stdout
        daemon = int(svc.pid_file.read_text())
        assert daemon != sleeper.pid and sleeper.poll() is None

        # The Analyzer is "another program" for Horizon's script: status says so, stop leaves it running.
        horizon_pid = svc.pid_file.parent / "horizon.pid"
        horizon_pid.write_text(f"{daemon}\n")
        run = functools.partial(subprocess.run, env=svc.env, capture_output=True, text=True, timeout=60)
        assert run([*horizon_d, "status"]).returncode == 1
        assert run([*horizon_d, "stop"]).returncode == 0
        assert not horizon_pid.exists() and svc("status").returncode == 0
        assert svc("stop").returncode == 0
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_wrong_redis_password_fails_at_start_up(service, own_redis):
    server = own_redis(password="right")
    svc = service(REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD="wrong")
    started = svc("start")
    assert started.returncode != 0
    assert "error - failed to start analyzer" in started.stdout
    assert "REDIS_PASSWORD" in started.stdout
    assert not svc.pid_file.exists()
    assert svc("status").returncode == 3
    direct = subprocess.run([str(SCRIPT), "run"], env=svc.env, capture_output=True, text=True, timeout=60)
    assert direct.returncode == 1 and "rejected the credentials (check REDIS_PASSWORD)" in direct.stderr


@functools.cache
def many_metrics(count: int) -> dict:
    """Generated once per session (it takes a while): long enough runs to signal or stop a worker mid-run."""
    return synthetic.make_metrics(count, int(time.time()), anomalous=3, points=600)


def seed_many(redis_conn, count: int) -> dict:
    metrics = many_metrics(count)
    seed_redis(redis_conn, metrics, "metrics.")
    return metrics


def start_daemon(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(SCRIPT), "run", *args], env=settings_env(path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def start_on_many(make_settings, redis_conn, *args: str, **overrides: object) -> subprocess.Popen:
    """The daemon started on 2000 seeded metrics, enough to signal or freeze a worker mid-run."""
    seed_many(redis_conn, 2000)
    return start_daemon(make_settings(**NO_ALERTS, **overrides), *args)


def test_sigterm_mid_run_finishes_the_run_and_exits_0(make_settings, redis_conn, tmp_path):
    process = start_on_many(make_settings, redis_conn, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=60,
                            ANOMALY_DUMP=str(tmp_path / "anomalies.json"))
    log = tmp_path / "log" / "analyzer.log"
    try:
        worker = freeze_first_worker(process)
        process.send_signal(signal.SIGTERM)
        wait_for_log(log, "received SIGTERM")
        os.kill(worker, signal.SIGCONT)
        assert process.wait(timeout=60) == 0
    finally:
        kill_process(process)
    text = log.read_text()
    after = text[text.index("received SIGTERM"):]
    assert "total metrics      :: 2000" in after
    assert "total anomalies    :: 3" in after
    assert "analyzer stopped" in after
    assert "sleeping for" not in after and "timed out" not in after
    assert len(json.loads((tmp_path / "anomalies.json").read_text())) == 3


def test_a_hung_worker_is_killed_and_the_run_still_reports(make_settings, redis_conn, tmp_path):
    process = start_on_many(make_settings, redis_conn, "--max-runs", "1", ANALYZER_PROCESSES=2,
                            MAX_ANALYZER_PROCESS_RUNTIME=3, ANOMALY_DUMP=str(tmp_path / "anomalies.json"))
    log = tmp_path / "log" / "analyzer.log"
    try:
        stopped = freeze_first_worker(process)
        started = time.monotonic()
        assert process.wait(timeout=60) == 0
        assert time.monotonic() - started < 3 + 10
    finally:
        kill_process(process)
    assert not Path(f"/proc/{stopped}").exists()
    text = log.read_text()
    assert "timed out, killing all spin_process processes" in text
    assert "error :: spin_process 1 was killed at the runtime limit" in text
    left = re.search(r"spin_process 1 left (\d+) of its 1000 metrics unprocessed", text)
    assert left and int(left.group(1)) > 0
    assert "total metrics      :: 2000" in text
    assert "seconds to run" in text


def test_a_second_ctrl_c_stops_at_once_and_kills_the_workers(make_settings, redis_conn, tmp_path):
    process = start_on_many(make_settings, redis_conn, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=60)
    log = tmp_path / "log" / "analyzer.log"
    try:
        worker = freeze_first_worker(process)
        process.send_signal(signal.SIGINT)
        wait_for_log(log, "Ctrl-C again to stop now")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
    finally:
        kill_process(process)
    assert not Path(f"/proc/{worker}").exists()
    text = log.read_text()
    assert "interrupted twice: stopped immediately" in text
    assert "total metrics      ::" not in text


def test_service_unit_is_type_notify_with_a_watchdog():
    unit = (REPO / "etc" / "systemd" / "analyzer.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    assert "skyline-analyzer run" in unit


def test_the_daemon_rides_out_a_redis_restart(make_settings, own_redis):
    """Redis killed between runs: the running daemon logs it, reconnects and analyses again."""
    server = own_redis()
    metrics = synthetic.make_metrics(30, int(time.time()), anomalous=2, points=300)
    seed_redis(server.client(), metrics, "metrics.")
    svc = Service(make_settings(**NO_ALERTS, REDIS_SOCKET_PATH=server.socket_path, ANALYZER_OPTIMUM_RUN_DURATION=1))
    process = subprocess.Popen([str(SCRIPT), "run"], env=svc.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_log(svc.log, "total metrics      :: 30")
        server.stop()
        wait_for_log(svc.log, "error :: cannot connect to Redis")
        server.start()
        seed_redis(server.client(), metrics, "metrics.")
        before = svc.log_text().count("total metrics      :: 30")
        text = wait_for_log(svc.log, "total metrics      :: 30", count=before + 1)
        assert "total anomalies    :: 2" in text.split("cannot connect to Redis")[-1]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        kill_process(process)
