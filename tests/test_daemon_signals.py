"""Signals and the systemd watchdog with real processes: ``skyline-analyzer run`` and ``skyline-analyzer horizon``
receive real SIGHUP/SIGINT/SIGTERM, and a real ``$NOTIFY_SOCKET`` datagram socket times the watchdog pings."""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyline_analyzer import synthetic
from skyline_analyzer.cli.demo import seed_redis
from tests.carbon_server import free_port
from tests.test_horizon_listen import free_udp_port

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "skyline-analyzer"
QUIET = {"ENABLE_ALERTS": False, "ALERT_ON_STALE_METRICS": False}


def wait_for(path: Path, pattern: str, count: int = 1, timeout: float = 60) -> str:
    """The file's text once ``pattern`` occurs ``count`` times in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if len(re.findall(pattern, text)) >= count:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} x{count} not in {path} within {timeout} s:\n{text[-3000:]}")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def first_worker(process: subprocess.Popen, timeout: float = 60) -> int:
    """SIGSTOP the daemon's first worker as soon as it is forked, so that the run cannot end by itself."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "no worker was forked"
        found = children(process.pid)
        if found:
            os.kill(found[0], signal.SIGSTOP)
            return found[0]
        time.sleep(0.002)


@contextmanager
def daemon(settings: Path, *args: str, log: Path | None = None, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run ``skyline-analyzer <args>``, its stdout and stderr appended to ``log`` (as bin/analyzer.d does)."""
    out = open(log, "a") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen([str(CLI), *args], env={**os.environ, "SKYLINE_SETTINGS": str(settings), **(env or {})},
                               stdout=out, stderr=subprocess.STDOUT)
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
    path = make_settings(**QUIET, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=60,
                         ANALYZER_OPTIMUM_RUN_DURATION=1)
    log = tmp_path / "log" / "analyzer.log"
    with daemon(path, "run", log=log) as process:
        worker = first_worker(process)
        wait_for(log, "bin/analyzer.d log management")
        log.rename(tmp_path / "log" / "analyzer.log.1")
        process.send_signal(signal.SIGHUP)
        # Logged while the worker is still stopped: the signal ended the wait on the workers' pipes.
        reopened = wait_for(log, r"analyzer :: received SIGHUP: reopened the log files .*analyzer\.log", timeout=10)
        assert "total metrics" not in reopened
        # stderr, appended to the old file, now goes to the new one as well.
        assert os.readlink(f"/proc/{process.pid}/fd/2") == str(log)
        os.kill(worker, signal.SIGCONT)
        text = wait_for(log, r"total metrics      :: 1000", count=2)
        assert process.poll() is None
        assert "total anomalies    :: 2" in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    old = (tmp_path / "log" / "analyzer.log.1").read_text()
    assert "received SIGHUP" not in old and "total metrics" not in old
    assert "analyzer stopped" in log.read_text()


def test_analyzer_sigterm_while_pacing_exits_0_at_once(make_settings, redis_conn, tmp_path):
    seed_redis(redis_conn, metrics(20), "metrics.")
    path = make_settings(**QUIET, ANALYZER_OPTIMUM_RUN_DURATION=60)
    log = tmp_path / "log" / "analyzer.log"
    with daemon(path, "run") as process:
        wait_for(log, "sleeping for")
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - sent < 5
    text = log.read_text()
    assert "analyzer :: received SIGTERM: stopping after the current run's bookkeeping" in text
    assert text.count("total metrics      ::") == 1


class NotifyReceiver:
    """A real ``$NOTIFY_SOCKET``: a thread reads and timestamps every datagram as it arrives (the kernel
    queues only a few unread datagrams, and the daemon never blocks on a full queue)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.done.is_set():
            try:
                self.received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.sock.close()

    def longest_silence(self) -> float:
        """The longest time from READY=1 to STOPPING=1 without a WATCHDOG=1."""
        messages = [message for _, message in self.received]
        start = self.received[messages.index("READY=1")][0]
        end = self.received[messages.index("STOPPING=1")][0]
        marks = [start, *(t for t, m in self.received if m == "WATCHDOG=1" and start <= t <= end), end]
        return max(later - earlier for earlier, later in itertools.pairwise(marks))


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
    path = make_settings(**QUIET, ANALYZER_OPTIMUM_RUN_DURATION=1)
    receiver = NotifyReceiver(tmp_path / "notify.sock")
    try:
        env = {"NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "1000000"}
        with daemon(path, "run", "--max-runs", "2", env=env) as process:
            assert process.wait(timeout=60) == 0
        time.sleep(0.2)
    finally:
        receiver.close()
    messages = [message for _, message in receiver.received]
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 2
    assert receiver.longest_silence() < 1.0


def test_watchdog_pings_through_slow_steps(make_settings, redis_conn, tmp_path):
    """WatchdogSec=2: no silence reaches 2 s over two runs with a worker killed at the runtime limit, a
    carbon that never accepts (10 s connect timeout, twice) and pacing."""
    seed_redis(redis_conn, metrics(1000), "metrics.")
    receiver = NotifyReceiver(tmp_path / "notify.sock")
    try:
        with unresponsive_carbon() as port:
            path = make_settings(**QUIET, ANALYZER_PROCESSES=1, MAX_ANALYZER_PROCESS_RUNTIME=3,
                                 ANALYZER_OPTIMUM_RUN_DURATION=1, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=port)
            env = {"NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "2000000"}
            with daemon(path, "run", "--max-runs", "2", env=env) as process:
                first_worker(process)
                assert process.wait(timeout=120) == 0
        time.sleep(0.2)
    finally:
        receiver.close()
    text = (tmp_path / "log" / "analyzer.log").read_text()
    assert "timed out, killing all spin_process processes" in text
    assert text.count("cannot send") == 2 and "timed out" in text.split("cannot send")[1]
    messages = [message for _, message in receiver.received]
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    arrivals = " ".join(f"{t - receiver.received[0][0]:.2f}" for t, _ in receiver.received)
    assert receiver.longest_silence() < 2.0, arrivals


# --- Horizon ------------------------------------------------------------------------------------


def horizon_settings(make_settings, **overrides) -> Path:
    return make_settings(HORIZON_IP="127.0.0.1", PICKLE_PORT=free_port(), UDP_PORT=free_udp_port(),
                         PLAINTEXT_PORT=free_port(), **overrides)


def test_horizon_sighup_reopens_the_log_and_sigterm_exits_0(make_settings, redis_conn, tmp_path):
    log = tmp_path / "log" / "horizon.log"
    with daemon(horizon_settings(make_settings), "horizon", log=log) as process:
        wait_for(log, "bin/horizon.d log management")
        log.rename(tmp_path / "log" / "horizon.log.1")
        process.send_signal(signal.SIGHUP)
        wait_for(log, r"horizon :: received SIGHUP: reopened the log files .*horizon\.log", timeout=10)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    text = log.read_text()
    assert "horizon :: received SIGTERM: stopping" in text and "horizon :: stopped" in text
    assert "received SIGHUP" not in (tmp_path / "log" / "horizon.log.1").read_text()


def test_horizon_second_sigint_kills_the_children_at_once(make_settings, redis_conn, tmp_path):
    log = tmp_path / "log" / "horizon.log"
    with daemon(horizon_settings(make_settings), "horizon") as process:
        wait_for(log, "bin/horizon.d log management")
        forked = children(process.pid)
        assert forked
        # Stopped children cannot finish: the graceful stop would wait out its timeouts.
        for pid in forked:
            os.kill(pid, signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        wait_for(log, r"horizon :: received SIGINT: .*\(Ctrl-C again to stop now\)", timeout=10)
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
