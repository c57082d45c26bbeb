"""Plain helpers the tests share: settings files, free ports, log waits, the CLI, the golden vectors.

Fixtures built on these (a private Redis, settings pointing at it, carbon) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from skyline_analyzer import config
from skyline_analyzer.harness import free_port, free_ports

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "data" / "vectors"
CORPORA = ("corpus_60s", "corpus_10s")
#: The command line as an operator runs it, in this interpreter.
CLI = [sys.executable, "-m", "skyline_analyzer"]
#: The installed console script, which the systemd units and bin/analyzer.d call.
SCRIPT = Path(sys.executable).parent / "skyline-analyzer"
#: Settings for a daemon that sends no alert of any kind.
NO_ALERTS = {"ENABLE_ALERTS": False, "ALERT_ON_STALE_METRICS": False}


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    return free_port(socket.SOCK_DGRAM)


def write_settings(directory: Path, **overrides: object) -> Path:
    """Write ``directory/settings.py``: a copy of the operator's settings.py with overrides appended.

    Logs, pid, tmp and the anomaly dump go into ``directory`` and Graphite sending is off, unless
    overridden. Redis defaults to a socket in ``directory`` that does not exist, so that a test which
    names no Redis can never reach a shared one.
    """
    for name in ("log", "pid", "tmp"):
        (directory / name).mkdir(exist_ok=True)
    values = {
        "REDIS_SOCKET_PATH": str(directory / "no-redis.sock"),
        "LOG_PATH": str(directory / "log"),
        "PID_PATH": str(directory / "pid"),
        "SKYLINE_TMP_DIR": str(directory / "tmp"),
        "ANOMALY_DUMP": str(directory / "anomalies.json"),
        "GRAPHITE_HOST": "",
        **overrides,
    }
    path = directory / "settings.py"
    shutil.copyfile(REPO / "settings.py", path)
    with path.open("a") as handle:
        handle.write("\n# test overrides\n")
        for name, value in values.items():
            handle.write(f"{name} = {value!r}\n")
    return path


def load_settings(directory: Path, **overrides: object) -> config.Settings:
    """Write a settings file (see ``write_settings``) and load it the way the daemons do."""
    return config.load(write_settings(directory, **overrides))


def horizon_overrides(**overrides: object) -> dict:
    """Settings for Horizon's three listeners on free loopback ports, flushing chunks every 0.2 s."""
    return {"HORIZON_IP": "127.0.0.1", **free_ports(), "CHUNK_FLUSH_INTERVAL": 0.2, **overrides}


def settings_env(settings_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment with SKYLINE_SETTINGS naming ``settings_path``."""
    return {**os.environ, "SKYLINE_SETTINGS": str(settings_path), **extra}


def run_cli(settings_path: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    """``skyline-analyzer <args>`` with the given settings file; output captured as text."""
    return subprocess.run([*CLI, *args], env=settings_env(settings_path), capture_output=True, text=True,
                          **kwargs)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` if it still runs, and reap it."""
    if process.poll() is None:
        process.kill()
        process.wait()


def wait_for_log(log: Path, text: str, count: int = 1, timeout: float = 60.0,
                 process: subprocess.Popen | None = None) -> str:
    """Poll ``log`` until ``text`` appears ``count`` times; return its content.

    Gives up early when ``process`` (the one writing the log) has exited.
    """
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = log.read_text() if log.exists() else ""
        if content.count(text) >= count:
            return content
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} x{count} not in {log} within {timeout} s:\n{content[-3000:] or '(no log)'}")


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as gone: it runs nothing). The process may vanish between
    any two reads of /proc, so its absence is read from the error, never checked first."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False


def children(pid: int) -> list[int]:
    """The pids of the live children of ``pid`` ([] once it is gone)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def freeze_first_worker(process: subprocess.Popen, timeout: float = 60) -> int:
    """SIGSTOP the daemon's first worker as soon as it is forked, so that the run cannot end by itself."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and process.poll() is None, "no worker was forked"
        found = children(process.pid)
        if found:
            os.kill(found[0], signal.SIGSTOP)
            return found[0]
        time.sleep(0.002)



class NotifyReceiver:
    """A real ``$NOTIFY_SOCKET`` (the datagram socket systemd binds for a ``Type=notify`` service): a thread
    reads and timestamps every message as it arrives, because the kernel queues only a few unread datagrams
    and the daemons drop a notification rather than block on a full queue. ``on_message`` is called with each
    message, in that thread, as it arrives: to look at the daemon at that very moment."""

    def __init__(self, on_message: Callable[[str], None] | None = None) -> None:
        self.on_message = on_message

    def __enter__(self) -> NotifyReceiver:
        self.directory = tempfile.mkdtemp(prefix="sknotify")
        self.path = str(Path(self.directory) / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()
        return self

    def _receive(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.sock.recv(4096).decode()
            except (TimeoutError, OSError):
                continue
            self.received.append((time.monotonic(), message))
            if self.on_message is not None:
                self.on_message(message)

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def environ(self, watchdog_usec: int) -> dict[str, str]:
        """What systemd sets for a unit with ``WatchdogSec=`` of ``watchdog_usec`` microseconds."""
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(watchdog_usec)}

    def messages(self) -> list[str]:
        return [message for _, message in list(self.received)]

    def wait_for(self, message: str, count: int = 1, timeout: float = 30.0) -> bool:
        """True once ``message`` has arrived ``count`` times."""
        return wait_until(lambda: self.messages().count(message) >= count, timeout)

    def pings(self) -> list[float]:
        """Arrival times of the WATCHDOG=1 messages so far."""
        return [when for when, message in list(self.received) if message == "WATCHDOG=1"]

    def longest_silence(self, start: float | None = None, end: float | None = None) -> float:
        """The longest time between ``start`` and ``end`` (monotonic; by default READY=1 and STOPPING=1)
        without a watchdog ping."""
        received = list(self.received)
        if start is None:
            start = next(when for when, message in received if message == "READY=1")
        if end is None:
            end = next(when for when, message in received if message == "STOPPING=1")
        marks = sorted([start, *(when for when in self.pings() if start <= when <= end), end])
        return max(later - earlier for earlier, later in itertools.pairwise(marks))


def pickle_frame(datapoints: list, protocol: int = 2) -> bytes:
    """What carbon-relay writes: a 4-byte big-endian length, then the pickle (protocol 2 by default)."""
    payload = pickle.dumps(datapoints, protocol=protocol)
    return struct.pack("!I", len(payload)) + payload


class Touch:
    """Pickles to ``open(path, 'w')``: if it were ever called, the file would appear."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def vector_input(corpus: str) -> dict:
    """The golden-vector corpus's input: series name -> [[timestamp, value], ...]."""
    return json.loads(gzip.decompress((VECTORS / f"{corpus}.input.json.gz").read_bytes()))


def vector_expected(corpus: str) -> dict:
    """The golden-vector corpus's expected outcomes (``now``, ``input_sha256``, ``series``)."""
    return json.loads((VECTORS / f"{corpus}.expected.json").read_text())
