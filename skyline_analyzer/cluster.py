"""The Redis Cluster client every component gets from ``connections.connect`` when ``REDIS_CLUSTER_NODES`` is set.

redis-py's :class:`~redis.cluster.RedisCluster` differs from :class:`redis.Redis` in two ways the daemons'
loops cannot absorb as they are written, and :class:`ClusterClient` bridges both (docs/redis-cluster.md):

* it talks to the cluster in its constructor (it loads the slot map), so a cluster that is down at start-up
  would stop a daemon before its loop could wait for it. Here the client is built on the first command, and
  a failure to build it is a :class:`redis.ConnectionError`, as a single Redis that is down would give;
* some of its errors (a slot no node serves, a topology it cannot load) are not :class:`redis.RedisError`,
  which every loop catches. Here they are re-raised as :class:`redis.exceptions.ClusterError`, also from the
  pipelines it hands out.

Its PING goes to every master (not to the replicas, which nothing reads). Everything else (routing by slot,
following MOVED/ASK, reloading the slot map after a failover, splitting a multi-key DEL per slot) is
redis-py's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.exceptions
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster


def startup_nodes(addresses: Sequence[str]) -> list[ClusterNode]:
    """``'host:port'`` strings (IPv6 hosts in brackets) as redis-py startup nodes."""
    nodes = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    return nodes


def _translated(target: Any, call: Callable[..., Any], wrapper: _Translating) -> Callable[..., Any]:
    @functools.wraps(call)
    def translating(*args: Any, **kwargs: Any) -> Any:
        try:
            result = call(*args, **kwargs)
        except redis.exceptions.RedisClusterException as exc:
            raise redis.exceptions.ClusterError(str(exc)) from exc
        if result is target:  # pipeline chaining: pipe.delete(k).srem(s, k).execute()
            return wrapper
        if isinstance(result, ClusterPipeline):
            return _Translating(result)
        return result

    return translating


class _Translating:
    """A pipeline whose every call raises :class:`redis.RedisError` subclasses only."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        return _translated(self._target, attr, self) if callable(attr) else attr


def _auth_error(exc: BaseException | None) -> BaseException | None:
    """The authentication or authorization error ``exc`` is or was caused by, if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class ClusterClient(_Translating):
    """A :class:`RedisCluster` built on first use by ``factory``; its errors are :class:`redis.RedisError`.

    :attr:`client` is the underlying RedisCluster, for code that groups commands per node itself
    (:mod:`skyline_analyzer.storage`).
    """

    def __init__(self, factory: Callable[[], RedisCluster], description: str) -> None:
        super().__init__(None)
        self._factory = factory
        self.description = description

    @property
    def client(self) -> RedisCluster:
        if self._target is None:
            try:
                self._target = self._factory()
            except (redis.exceptions.RedisClusterException, redis.RedisError, OSError) as exc:
                # redis-py reports a refused password as "no reachable node"; a password never heals by
                # itself, so it is told apart (connections.check_credentials stops the start-up on it).
                refused = _auth_error(exc)
                if refused is not None:
                    raise refused from exc
                raise redis.ConnectionError(f"cannot load the slot map of {self.description}: {exc}") from exc
        return self._target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        return _translated(self._target, attr, self) if callable(attr) else attr

    def ping(self) -> bool:
        """PING every master (redis-py's default also pings the replicas, which are never read here: a
        dead replica would stop the loops until the cluster forgets it)."""
        return self.__getattr__("ping")(target_nodes=RedisCluster.PRIMARIES)

    def close(self) -> None:
        """Close every node's connections (nothing to do when no command was ever sent)."""
        if self._target is not None:
            self._target.close()
