"""A real Horizon (``skyline-analyzer horizon``) as a child process of a test, and what tests read of it.

The counters are read from the log: the agent logs every report (``horizon :: name value, ...``), one per
interval and one at stop, each the growth since the previous one, so a counter's total is their sum.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from skyline_analyzer import config
from tests.carbon_server import free_port

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "skyline_analyzer"]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def horizon_settings(make_settings: Callable[..., Path], **overrides: object) -> Path:
    """A settings file for a Horizon on loopback, on free ports, flushing chunks every 0.2 s."""
    values = {"HORIZON_IP": "127.0.0.1", "PICKLE_PORT": free_port(), "UDP_PORT": free_udp_port(),
              "PLAINTEXT_PORT": free_port(), "CHUNK_FLUSH_INTERVAL": 0.2, "SERVER_METRICS_NAME": "e2e", **overrides}
    return make_settings(**values)


def wait_for_log(log: Path, text: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text()[-5000:] if log.exists() else '(no log)'}")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class HorizonProcess:
    """``skyline-analyzer horizon`` with a settings file, started and serving; ``nofile`` caps its descriptors."""

    def __init__(self, settings_path: Path, nofile: int | None = None) -> None:
        self.settings = config.load(settings_path)
        self.log = Path(self.settings.LOG_PATH) / "horizon.log"
        env = {**os.environ, "SKYLINE_SETTINGS": str(settings_path)}

        def limit_descriptors() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.process = subprocess.Popen([*CLI, "horizon"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, preexec_fn=limit_descriptors)
        for protocol in ("pickle", "udp", "plaintext"):
            wait_for_log(self.log, f"{protocol} listener serving", process=self.process)

    def address(self, setting: str) -> tuple[str, int]:
        return "127.0.0.1", self.settings[setting]

    def pid_of(self, announcement: str) -> int:
        """The pid on the last log line holding ``announcement`` (e.g. ``pickle listener serving``)."""
        line = [line for line in self.log.read_text().splitlines() if announcement in line][-1]
        return int(line.split(" :: ")[1])

    def children(self) -> list[int]:
        agent = self.process.pid
        return [int(pid) for pid in Path(f"/proc/{agent}/task/{agent}/children").read_text().split()]

    def counters(self) -> Counter[str]:
        """Every counter summed over the reports logged so far."""
        totals: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if " :: horizon :: listen." not in line:
                continue
            for item in line.split(" :: horizon :: ", 1)[1].split(", "):
                name, value = item.rsplit(" ", 1)
                totals[name] += float(value)
        return totals

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
