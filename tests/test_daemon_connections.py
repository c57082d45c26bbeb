"""Redis connection, PING, back-off and reconnection against a real redis-server."""

from __future__ import annotations

import pytest

from skyline_analyzer import connections


def test_link_survives_a_redis_restart(load_settings, own_redis):
    server = own_redis()
    link = connections.RedisLink(load_settings(REDIS_SOCKET_PATH=server.socket_path))
    try:
        assert link.ping()
        server.stop()
        assert not link.ping()
        assert [link.backoff() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        server.start()
        link.reconnect()
        assert link.ping()
        assert link.backoff() == connections.FIRST_BACKOFF
    finally:
        link.close()


@pytest.mark.parametrize("password", ["wrong", None])
def test_wrong_password_is_a_clear_start_up_error(load_settings, own_redis, password):
    server = own_redis(password="s3cret")
    settings = load_settings(REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD=password)
    with pytest.raises(connections.RedisAuthError, match="REDIS_PASSWORD"):
        connections.check_credentials(settings)
    good = load_settings(REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD="s3cret")
    connections.check_credentials(good)


def test_unreachable_redis_is_not_a_start_up_error(load_settings, tmp_path):
    settings = load_settings(REDIS_SOCKET_PATH=str(tmp_path / "absent.sock"))
    connections.check_credentials(settings)
