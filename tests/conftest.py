"""Shared fixtures: a private Redis, and settings files written the way operators write them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "data" / "vectors"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_conn(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def make_settings(tmp_path: Path, redis_server: RedisServer) -> Callable[..., Path]:
    """Write a copy of the operator's settings.py with overrides appended; return its path.

    Paths (logs, pid, tmp, anomalies.json) point into the test's temp dir and Redis at the private
    server, unless overridden; Graphite sending is off.
    """

    def write(**overrides: object) -> Path:
        for name in ("log", "pid", "tmp"):
            (tmp_path / name).mkdir(exist_ok=True)
        values = {
            "REDIS_SOCKET_PATH": redis_server.socket_path,
            "LOG_PATH": str(tmp_path / "log"),
            "PID_PATH": str(tmp_path / "pid"),
            "SKYLINE_TMP_DIR": str(tmp_path / "tmp"),
            "ANOMALY_DUMP": str(tmp_path / "anomalies.json"),
            "GRAPHITE_HOST": "",
            **overrides,
        }
        path = tmp_path / "settings.py"
        shutil.copyfile(REPO / "settings.py", path)
        with path.open("a") as handle:
            handle.write("\n# test overrides\n")
            for name, value in values.items():
                handle.write(f"{name} = {value!r}\n")
        return path

    return write
