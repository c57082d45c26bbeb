"""Redis connection, PING, back-off and reconnection against a real redis-server."""

from __future__ import annotations

import pytest

from skyline_analyzer import config, connections
from tests.redis_server import RedisServer


def test_link_survives_a_redis_restart(make_settings, redis_server):
    settings = config.load(make_settings())
    link = connections.RedisLink(settings)
    try:
        assert link.ping()
        redis_server.stop()
        assert not link.ping()
        assert [link.backoff() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        redis_server.start()
        link.reconnect()
        assert link.ping()
        assert link.backoff() == connections.FIRST_BACKOFF
    finally:
        link.close()
        if redis_server.process is None:
            redis_server.start()


@pytest.mark.parametrize("password", ["wrong", None])
def test_wrong_password_is_a_clear_start_up_error(make_settings, tmp_path, password):
    server = RedisServer(tmp_path / "pw", password="s3cret")
    (tmp_path / "pw").mkdir()
    server.start()
    try:
        settings = config.load(make_settings(REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD=password))
        with pytest.raises(connections.RedisAuthError, match="REDIS_PASSWORD"):
            connections.check_credentials(settings)
        good = config.load(make_settings(REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD="s3cret"))
        connections.check_credentials(good)
    finally:
        server.stop()


def test_unreachable_redis_is_not_a_start_up_error(make_settings, tmp_path):
    settings = config.load(make_settings(REDIS_SOCKET_PATH=str(tmp_path / "absent.sock")))
    connections.check_credentials(settings)
