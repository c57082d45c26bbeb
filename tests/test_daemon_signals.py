"""Signals and the systemd watchdog with real processes: ``skyline-analyzer run`` and ``skyline-analyzer horizon``
receive real SIGHUP/SIGINT/SIGTERM, and a real ``$NOTIFY_SOCKET`` datagram socket times the watchdog pings."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyline_analyzer import synthetic
from skyline_analyzer.harness import free_ports, seed_redis
from tests.support import (
    NO_ALERTS,
    REPO,
    SCRIPT,
    NotifyReceiver,
    alive,
    children,
    freeze_first_worker,
    settings_env,
    wait_for_log,
)


@contextmanager
def daemon(settings: Path, *args: str, log: Path | None = None, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run ``skyline-analyzer <args>``, its stdout and stderr appended to ``log`` (as bin/analyzer.d does)."""
    out = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen([str(SCRIPT), *args], env=settings_env(settings, **(env or {})), stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            for pid in children(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
        process.wait()
        if log is not None:
            out.close()


@functools.cache
def metrics(count: int) -> dict:
    return synthetic.make_metrics(count, int(time.time()), anomalous=2, points=600)


# --- the Analyzer -------------------------------------------------------------------------------


def test_analyzer_sighup_mid_run_reopens_the_log_and_the_run_goes_on(make_settings, redis_conn, tmp_path):
    seed_redis(redis_conn, metrics(1000), "metrics.")
    path = make_settings(**NO_ALERTS, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=60,
                         ANALYZER_OPTIMUM_RUN_DURATION=1)
    log = tmp_path / "log" / "analyzer.log"
    with daemon(path, "run", log=log) as process:
        worker = freeze_first_worker(process)
        wait_for_log(log, "bin/analyzer.d log management")
        log.rename(tmp_path / "log" / "analyzer.log.1")
        process.send_signal(signal.SIGHUP)
        # Logged while the worker is still stopped: the signal ended the wait on the workers' pipes.
        reopened = wait_for_log(log, "analyzer :: received SIGHUP: reopened the log files", timeout=10)
        assert "total metrics" not in reopened
        # stderr, appended to the old file, now goes to the new one as well.
        assert os.readlink(f"/proc/{process.pid}/fd/2") == str(log)
        os.kill(worker, signal.SIGCONT)
        text = wait_for_log(log, "total metrics      :: 1000", count=2)
        assert process.poll() is None
        assert "total anomalies    :: 2" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    old = (tmp_path / "log" / "analyzer.log.1").read_text()
    assert "received SIGHUP" not in old and "total metrics" not in old
    assert "analyzer stopped" in log.read_text()


def test_analyzer_sigterm_while_pacing_exits_0_at_once(make_settings, redis_conn, tmp_path):
    seed_redis(redis_conn, metrics(20), "metrics.")
    path = make_settings(**NO_ALERTS, ANALYZER_OPTIMUM_RUN_DURATION=60)
    log = tmp_path / "log" / "analyzer.log"
    with daemon(path, "run") as process:
        wait_for_log(log, "sleeping for")
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - sent < 5
    text = log.read_text()
    assert "analyzer :: received SIGTERM: stopping after the current run's bookkeeping" in text
    assert text.count("total metrics      ::") == 1


@contextmanager
def unresponsive_carbon() -> Iterator[int]:
    """A port whose accept queue is full: a connect to it hangs until the client's timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = []
    try:
        while True:
            client = socket.socket()
            client.settimeout(0.3)
            try:
                client.connect(("127.0.0.1", port))
            except TimeoutError:
                client.close()
                break
            held.append(client)
        yield port
    finally:
        for client in held:
            client.close()
        server.close()


def test_systemd_notify_ready_watchdog_stopping(make_settings, redis_conn, tmp_path):
    """READY=1, WATCHDOG=1 and STOPPING=1 arrive on a real $NOTIFY_SOCKET datagram socket."""
    seed_redis(redis_conn, metrics(20), "metrics.")
    path = make_settings(**NO_ALERTS, ANALYZER_OPTIMUM_RUN_DURATION=1)
    with NotifyReceiver() as receiver:
        with daemon(path, "run", "--max-runs", "2", env=receiver.environ(1_000_000)) as process:
            assert process.wait(timeout=60) == 0
        time.sleep(0.2)
    messages = receiver.messages()
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 2
    assert receiver.longest_silence() < 1.0


def test_ks_tests_modules_are_loaded_before_ready(make_settings, redis_conn):
    """statsmodels (``ks_test``'s ADF step; a second or more to import on a busy machine) is already mapped into
    the daemon when READY=1 arrives: imported during start-up, not in the first run between two pings."""
    seed_redis(redis_conn, metrics(20), "metrics.")
    path = make_settings(**NO_ALERTS, ANALYZER_OPTIMUM_RUN_DURATION=1)
    started: list[subprocess.Popen] = []
    seen_at_ready: list[bool] = []

    def look(message: str) -> None:
        if message == "READY=1" and started:
            try:
                maps = Path(f"/proc/{started[0].pid}/maps").read_text()
            except OSError:
                return
            seen_at_ready.append("/statsmodels/" in maps)

    with (NotifyReceiver(on_message=look) as receiver,
          daemon(path, "run", "--max-runs", "1", env=receiver.environ(10_000_000)) as process):
        started.append(process)
        assert process.wait(timeout=60) == 0
    assert receiver.messages()[0] == "READY=1"
    assert seen_at_ready == [True]


def test_watchdog_pings_through_slow_steps(make_settings, redis_conn, tmp_path):
    """WatchdogSec=2: no silence reaches 2 s over two runs with a worker killed at the runtime limit, a
    carbon that never accepts (10 s connect timeout, twice) and pacing."""
    seed_redis(redis_conn, metrics(1000), "metrics.")
    with NotifyReceiver() as receiver, unresponsive_carbon() as port:
        path = make_settings(**NO_ALERTS, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=3,
                             ANALYZER_OPTIMUM_RUN_DURATION=1, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=port)
        with daemon(path, "run", "--max-runs", "2", env=receiver.environ(2_000_000)) as process:
            freeze_first_worker(process)
            assert process.wait(timeout=120) == 0
        time.sleep(0.2)
    text = (tmp_path / "log" / "analyzer.log").read_text()
    assert "timed out, killing all spin_process processes" in text
    assert text.count("cannot send") == 2 and "timed out" in text.split("cannot send")[1]
    messages = receiver.messages()
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    arrivals = " ".join(f"{t - receiver.received[0][0]:.2f}" for t, _ in receiver.received)
    assert receiver.longest_silence() < 2.0, arrivals


# --- Horizon ------------------------------------------------------------------------------------


def horizon_settings(make_settings, **overrides) -> Path:
    return make_settings(HORIZON_IP="127.0.0.1", **free_ports(), **overrides)


def test_horizon_sighup_reopens_the_log_and_sigterm_exits_0(make_settings, redis_conn, tmp_path):
    log = tmp_path / "log" / "horizon.log"
    with daemon(horizon_settings(make_settings), "horizon", log=log) as process:
        wait_for_log(log, "bin/horizon.d log management")
        log.rename(tmp_path / "log" / "horizon.log.1")
        process.send_signal(signal.SIGHUP)
        wait_for_log(log, "horizon :: received SIGHUP: reopened the log files", timeout=10)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    text = log.read_text()
    assert "horizon :: received SIGTERM: stopping" in text and "horizon :: stopped" in text
    assert "received SIGHUP" not in (tmp_path / "log" / "horizon.log.1").read_text()


def test_horizon_second_sigint_kills_the_children_at_once(make_settings, redis_conn, tmp_path):
    log = tmp_path / "log" / "horizon.log"
    with daemon(horizon_settings(make_settings), "horizon") as process:
        wait_for_log(log, "bin/horizon.d log management")
        forked = children(process.pid)
        assert forked
        # Stopped children cannot finish: the graceful stop would wait out its timeouts.
        for pid in forked:
            os.kill(pid, signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        wait_for_log(log, "(Ctrl-C again to stop now)", timeout=10)
        time.sleep(0.5)
        assert process.poll() is None
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert time.monotonic() - sent < 5
    assert not any(alive(pid) for pid in forked)
    assert "horizon :: interrupted twice: stopped immediately" in log.read_text()


def test_the_units_reload_with_sighup():
    for name in ("analyzer", "horizon"):
        unit = (REPO / "etc" / "systemd" / f"{name}.service").read_text()
        assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit
