"""A private carbon-cache (Debian's ``graphite-carbon``) for tests: loopback ports, conf and storage in tmp.

It does not need, and never touches, the system's carbon service. Metrics are read back from the
whisper files it writes, with the ``whisper`` module.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import whisper

from skyline_analyzer.harness import distinct_free_ports, stop

#: Whisper retention for every metric: one-second points for an hour, so each run's value is kept.
RETENTIONS = "1s:1h"
#: What reading a whisper file raises before carbon has written it: no file yet, or a file created and its
#: header not yet written into it.
NOT_WRITTEN = (FileNotFoundError, whisper.CorruptWhisperFile)


def carbon_cache_binary() -> str:
    binary = shutil.which("carbon-cache") or "/usr/bin/carbon-cache"
    if not Path(binary).exists():
        raise RuntimeError("carbon-cache is not installed: `make deps` installs the graphite-carbon package")
    return binary


class CarbonServer:
    """One ``carbon-cache`` instance whose line receiver listens on ``127.0.0.1:<line_port>``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.storage = directory / "storage"
        self.whisper_dir = self.storage / "whisper"
        self.conf = directory / "carbon.conf"
        self.line_port, self.pickle_port, self.query_port = distinct_free_ports(3)
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> None:
        for path in (self.whisper_dir, self.directory / "log", self.directory / "run"):
            path.mkdir(parents=True, exist_ok=True)
        (self.directory / "storage-schemas.conf").write_text(
            f"[everything]\npattern = .*\nretentions = {RETENTIONS}\n"
        )
        self.conf.write_text(
            "[cache]\n"
            f"STORAGE_DIR = {self.storage}/\n"
            f"LOCAL_DATA_DIR = {self.whisper_dir}/\n"
            f"CONF_DIR = {self.directory}/\n"
            f"LOG_DIR = {self.directory / 'log'}/\n"
            f"PID_DIR = {self.directory / 'run'}/\n"
            "DATABASE = whisper\n"
            "ENABLE_LOGROTATION = False\n"
            "USER =\n"
            "MAX_CACHE_SIZE = inf\n"
            "MAX_UPDATES_PER_SECOND = inf\n"
            "MAX_CREATES_PER_MINUTE = inf\n"
            "LINE_RECEIVER_INTERFACE = 127.0.0.1\n"
            f"LINE_RECEIVER_PORT = {self.line_port}\n"
            "ENABLE_UDP_LISTENER = False\n"
            "PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n"
            f"PICKLE_RECEIVER_PORT = {self.pickle_port}\n"
            "CACHE_QUERY_INTERFACE = 127.0.0.1\n"
            f"CACHE_QUERY_PORT = {self.query_port}\n"
            "CARBON_METRIC_INTERVAL = 0\n"
            "CACHE_WRITE_STRATEGY = sorted\n"
            "WHISPER_AUTOFLUSH = True\n"
            "WHISPER_FALLOCATE_CREATE = False\n"
        )

    def start(self, timeout: float = 30.0) -> CarbonServer:
        self._write_config()
        args = [carbon_cache_binary(), f"--config={self.conf}", f"--pidfile={self.directory / 'run' / 'carbon.pid'}",
                f"--logdir={self.directory / 'log'}", "--nodaemon", "start"]
        self.process = subprocess.Popen(args, stdout=(self.directory / "stdout.log").open("wb"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.line_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        output = (self.directory / "stdout.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"carbon-cache did not start on 127.0.0.1:{self.line_port}:\n{output[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=15)
        self.process = None

    def whisper_path(self, metric: str) -> Path:
        return self.whisper_dir.joinpath(*metric.split(".")).with_suffix(".wsp")

    def values(self, metric: str) -> list[float]:
        """Every non-empty value stored for ``metric`` in the last hour, oldest first ([] if no file yet)."""
        return [value for _, value in self.points(metric)]

    def points(self, metric: str) -> list[tuple[int, float]]:
        """Every non-empty ``(timestamp, value)`` stored for ``metric`` in the last hour, oldest first."""
        try:
            fetched = whisper.fetch(str(self.whisper_path(metric)), int(time.time()) - 3500)
        except NOT_WRITTEN:
            return []
        if fetched is None:
            return []
        (start, _, step), values = fetched
        return [(start + i * step, value) for i, value in enumerate(values) if value is not None]

    def header(self, metric: str) -> dict | None:
        """The whisper header of ``metric`` (its aggregation and archives), None while carbon has not written it."""
        try:
            return whisper.info(str(self.whisper_path(metric)))
        except NOT_WRITTEN:
            return None

    def wait_for(self, metric: str, count: int = 1, timeout: float = 30.0) -> list[float]:
        """Poll until ``metric`` has at least ``count`` values (carbon writes asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.values(metric)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        return self.values(metric)

    def metrics(self) -> list[str]:
        """Every metric name that has a whisper file."""
        return sorted(
            ".".join(path.relative_to(self.whisper_dir).with_suffix("").parts)
            for path in self.whisper_dir.rglob("*.wsp")
        )
