"""A private redis-server for tests: unix socket in a temp dir, no persistence, never the shared one."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from skyline_analyzer.harness import stop


class RedisServer:
    """Start, stop and restart one redis-server listening only on ``<dir>/redis.sock``."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.directory = directory
        self.socket_path = str(directory / "redis.sock")
        self.password = password
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        args = [binary, "--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, redis.AuthenticationError, FileNotFoundError):
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on {self.socket_path}")

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=self.socket_path, password=self.password)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
