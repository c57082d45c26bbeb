"""Shared fixtures: private Redis servers and a Redis Cluster, settings files pointing at them, a private
carbon-cache.

Plain helpers (ports, log waits, settings files without a fixture) are in ``tests/support.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from skyline_analyzer import config, connections, harness
from skyline_analyzer.dask_cluster import DaskCluster, private_dask
from tests import support
from tests.carbon_server import CarbonServer
from tests.redis_server import RedisServer


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
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of the test's own (one it may stop, restart or lock); stopped at teardown."""
    started: list[RedisServer] = []

    def start(password: str | None = None) -> RedisServer:
        directory = tmp_path / f"own{len(started)}"
        directory.mkdir()
        server = RedisServer(directory, password=password)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _with_private_redis(server: RedisServer, overrides: dict) -> dict:
    return {"REDIS_SOCKET_PATH": server.socket_path, **overrides}


@pytest.fixture
def make_settings(tmp_path: Path, redis_server: RedisServer) -> Callable[..., Path]:
    """Write a test settings file (``support.write_settings``) in the test's temp dir; return its path.

    Redis is the session's private server unless overridden.
    """
    return lambda **overrides: support.write_settings(tmp_path, **_with_private_redis(redis_server, overrides))


@pytest.fixture
def load_settings(tmp_path: Path, redis_server: RedisServer) -> Callable[..., config.Settings]:
    """Like ``make_settings``, but return the settings loaded from the file as the daemons load them."""
    return lambda **overrides: support.load_settings(tmp_path, **_with_private_redis(redis_server, overrides))


@pytest.fixture(scope="module")
def carbon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CarbonServer]:
    """A private carbon-cache for the test module; whisper files are read back from its temp dir."""
    server = CarbonServer(tmp_path_factory.mktemp("carbon")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PrivateCluster]:
    """A Redis Cluster of 3 masters and 3 replicas on free loopback ports for the test module (a few
    seconds to start); a master that does not answer is failed over after 1 s."""
    with harness.private_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_conn(redis_cluster, load_settings):
    """A client of the module's Redis Cluster (through two of its nodes), emptied for the test."""
    conn = connections.connect(load_settings(REDIS_CLUSTER_NODES=redis_cluster.addresses[:2]))
    conn.flushall()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A real ``dask scheduler`` and two ``dask worker`` processes for the test module (left intact)."""
    with private_dask(tmp_path_factory.mktemp("dask"), workers=2) as cluster:
        yield cluster


@pytest.fixture
def own_dask(tmp_path: Path) -> Iterator[Callable[[int], DaskCluster]]:
    """Start a Dask scheduler with ``n`` workers of the test's own (ones it may kill or stop)."""
    with ExitStack() as stack:
        yield lambda workers: stack.enter_context(private_dask(tmp_path / "dask", workers=workers))
