"""Redis connections built from the settings (SPEC.md 1.1)."""

from __future__ import annotations

import redis

from skyline_analyzer.config import Settings


def connect(settings: Settings) -> redis.Redis:
    """A client for database 0: over ``REDIS_HOST:REDIS_PORT`` when a host is set, else the unix socket.

    ``REDIS_PASSWORD`` is sent with AUTH when truthy. Nothing is sent until the first command.
    """
    password = settings.REDIS_PASSWORD or None
    if settings.REDIS_HOST:
        return redis.Redis(host=settings.REDIS_HOST, port=settings.REDIS_PORT, db=0, password=password)
    return redis.Redis(unix_socket_path=settings.REDIS_SOCKET_PATH, db=0, password=password)
