"""Redis connections built from the settings, with PING and reconnection (docs/redis-keys.md#connection).

Every long-running loop starts an iteration with :meth:`RedisLink.ping`. When it fails, the loop logs,
waits :meth:`RedisLink.backoff` seconds and calls :meth:`RedisLink.reconnect` before trying again. The
original slept a flat 10 s; here the wait doubles from ``FIRST_BACKOFF`` up to that same 10 s, so a brief
Redis restart costs about a second, while a long outage is polled no faster than the original did.
"""

from __future__ import annotations

import logging

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from skyline_analyzer.cluster import ClusterClient, startup_nodes
from skyline_analyzer.config import Settings

log = logging.getLogger(__name__)

#: First wait after a failed PING, in seconds.
FIRST_BACKOFF = 0.5
#: Longest wait between reconnection attempts: the original's fixed back-off.
MAX_BACKOFF = 10.0
#: Immediate retries of a failed command. One covers a pooled socket that a Redis restart closed; the
#: library's default (ten retries with exponential back-off, several seconds) would hide an outage from
#: the loops that own the back-off.
COMMAND_RETRIES = 1


class RedisAuthError(Exception):
    """Redis refused our credentials: retrying cannot help, so start-up must fail."""


def connect(settings: Settings) -> redis.Redis | ClusterClient:
    """A client for database 0: over ``REDIS_HOST:REDIS_PORT`` when a host is set, else the unix socket;
    a Redis Cluster client when ``REDIS_CLUSTER_NODES`` is set (docs/redis-cluster.md).

    ``REDIS_PASSWORD`` is sent with AUTH when truthy. Nothing is sent until the first command. A failed
    command is retried ``COMMAND_RETRIES`` times at once, then raises (on a cluster, after reloading the
    slot map: the retry goes to the replica promoted in the meantime, if any).
    """
    password = settings.REDIS_PASSWORD or None
    retry = Retry(NoBackoff(), COMMAND_RETRIES)
    if settings.REDIS_CLUSTER_NODES:
        nodes = startup_nodes(settings.REDIS_CLUSTER_NODES)
        # A partly covered cluster (a shard lost with no replica) still serves the other shards' keys:
        # require_full_coverage=False lets the client load such a slot map instead of refusing every key.
        return ClusterClient(lambda: RedisCluster(startup_nodes=nodes, password=password, retry=retry,
                                                  require_full_coverage=False), describe(settings))
    if settings.REDIS_HOST:
        return redis.Redis(host=settings.REDIS_HOST, port=settings.REDIS_PORT, db=0, password=password, retry=retry)
    return redis.Redis(unix_socket_path=settings.REDIS_SOCKET_PATH, db=0, password=password, retry=retry)


def describe(settings: Settings) -> str:
    """Where the settings point: ``unix:<path>``, ``<host>:<port>`` or ``cluster:<node>,...`` (for log lines)."""
    if settings.REDIS_CLUSTER_NODES:
        return "cluster:" + ",".join(settings.REDIS_CLUSTER_NODES)
    if settings.REDIS_HOST:
        return f"{settings.REDIS_HOST}:{settings.REDIS_PORT}"
    return f"unix:{settings.REDIS_SOCKET_PATH}"


def check_credentials(settings: Settings) -> None:
    """PING once at start-up; raise :class:`RedisAuthError` when Redis rejects the password.

    An unreachable Redis is not an error here (the original had no reachability check: the loop waits
    for Redis). A wrong, missing or superfluous ``REDIS_PASSWORD`` never heals by itself, so it is.
    """
    conn = connect(settings)
    try:
        conn.ping()
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
        raise RedisAuthError(
            f"Redis at {describe(settings)} rejected the credentials (check REDIS_PASSWORD): {exc}"
        ) from exc
    except redis.ResponseError as exc:
        # Older servers answer AUTH without a configured password with a plain error reply.
        if "AUTH" not in str(exc).upper():
            raise
        raise RedisAuthError(
            f"Redis at {describe(settings)} rejected the credentials (check REDIS_PASSWORD): {exc}"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        log.warning("Redis at %s is not reachable yet (%s); the loop will keep retrying", describe(settings), exc)
    finally:
        conn.close()


class RedisLink:
    """One Redis client that a loop pings every iteration and replaces when Redis went away."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = connect(settings)
        self._next_backoff = FIRST_BACKOFF

    def ping(self) -> bool:
        """True when Redis answers; a successful PING resets the back-off."""
        try:
            self.conn.ping()
        except (redis.RedisError, OSError) as exc:
            log.error("error :: cannot connect to Redis at %s: %s", describe(self.settings), exc)
            return False
        self._next_backoff = FIRST_BACKOFF
        return True

    def backoff(self) -> float:
        """Seconds to wait before the next attempt: doubling from FIRST_BACKOFF, capped at MAX_BACKOFF."""
        delay = self._next_backoff
        self._next_backoff = min(self._next_backoff * 2, MAX_BACKOFF)
        return delay

    def reconnect(self) -> None:
        """Drop the current client's sockets and build a fresh client."""
        try:
            self.conn.close()
        except (redis.RedisError, OSError):
            log.debug("closing the old Redis client failed", exc_info=True)
        self.conn = connect(self.settings)

    def close(self) -> None:
        self.conn.close()
