"""Reading many series at once, on a single Redis or a Redis Cluster (docs/redis-cluster.md#reads).

On a single Redis :func:`fetch` is one MGET (a worker's through
:class:`skyline_analyzer.bulk_reader.BulkReader`). On a cluster a MGET may only name keys of one hash slot,
and redis-py's ``mget_nonatomic`` sends one command per slot: 500 plain metric names fall in ~490 slots, which
doubles the client's CPU. Here the names are grouped by slot and each node gets one pipeline holding one MGET
per slot it owns, written at once on one connection, so a chunk costs one round trip per master and little
more client CPU than a single MGET.

Topology changes are followed, not fatal. A MOVED reply or a node that does not answer reloads the slot
map and the slots concerned are read again (up to ``ATTEMPTS`` rounds); a slot being migrated (ASK,
TRYAGAIN) is read key by key through the cluster client, which follows ASK itself. Keys whose slot still
cannot be read (its master died and no replica has taken over yet, CLUSTERDOWN) are left out of the answer:
the worker leaves them unprocessed for this run, and a later run reads them from the promoted replica.
"""

from __future__ import annotations

import logging
from binascii import crc_hqx
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions
from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS as SLOTS
from redis.crc import key_slot

from skyline_analyzer import connections
from skyline_analyzer.bulk_reader import BulkReader
from skyline_analyzer.cluster import ClusterClient
from skyline_analyzer.config import Settings
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)

#: Rounds of reading, each after reloading the slot map when the previous one met MOVED or a dead node.
ATTEMPTS = 3
#: Replies that mean "the slot is moving": read its keys one by one.
_MIGRATING = (redis.exceptions.AskError, redis.exceptions.TryAgainError)
_NODE_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


def is_cluster(conn: Any) -> bool:
    """Whether ``conn`` talks to a Redis Cluster (pipelines there cannot carry scripts)."""
    return isinstance(conn, (ClusterClient, RedisCluster))


def reader(settings: Settings) -> BulkReader | Any:
    """What reads a worker's series: a :class:`BulkReader` on a single Redis, else a cluster client."""
    if settings.REDIS_CLUSTER_NODES:
        return connections.connect(settings)
    return BulkReader(settings)


def fetch(conn: Any, names: Sequence[str]) -> tuple[Sequence[str], list[Any]]:
    """The names read and their values (None for a missing key), in the order of ``names``.

    On a single Redis every name is read with one MGET (a failure raises); the values are ``bytes``, or
    :class:`memoryview` slices when ``conn`` is a :class:`BulkReader` (valid as it documents). On a cluster,
    the names whose slot could not be read are left out of the first list (and logged); the rest are read.
    """
    if isinstance(conn, BulkReader):
        return names, conn.mget(names)
    if isinstance(conn, ClusterClient):
        return cluster_fetch(conn.client, names)
    if isinstance(conn, RedisCluster):
        return cluster_fetch(conn, names)
    return names, conn.mget(names)


def cluster_fetch(client: RedisCluster, names: Sequence[str]) -> tuple[Sequence[str], list[bytes | None]]:
    """Slot-grouped, pipelined MGETs to each slot's master; see the module docstring."""
    encode = client.get_encoder().encode
    encoded = [encode(name) for name in names]
    by_slot: dict[int, list[int]] = defaultdict(list)
    for index, key in enumerate(encoded):
        # A name without '{' hashes whole (the common case, computed inline: this loop runs per key).
        by_slot[crc_hqx(key, 0) % SLOTS if b"{" not in key else key_slot(key)].append(index)
    values: list[Any] = [_UNREAD] * len(names)
    pending = sorted(by_slot)
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            _reload_slot_map(client)
        pending, problem = _read_round(client, names, encoded, by_slot, pending, values)
        if not pending:
            break
    if _UNREAD not in values:
        return names, values
    read = [name for name, value in zip(names, values, strict=True) if value is not _UNREAD]
    log.error("error :: %d of %d metrics not read: %d slots unavailable (%s)", len(names) - len(read),
              len(names), len(pending), escape(problem))
    return read, [value for value in values if value is not _UNREAD]


_UNREAD = object()


def _read_round(client: RedisCluster, names: Sequence[str], encoded: list[bytes], by_slot: dict[int, list[int]],
                slots: list[int], values: list[Any]) -> tuple[list[int], str]:
    """Read ``slots`` once; return the slots to read again after a slot-map reload, and the last problem."""
    by_node: dict[str, list[int]] = defaultdict(list)
    nodes = {}
    again: list[int] = []
    problem = ""
    for slot in slots:
        try:
            node = client.nodes_manager.get_node_from_slot(slot)
        except redis.exceptions.SlotNotCoveredError as exc:
            again.append(slot)
            problem = str(exc)
            continue
        by_node[node.name].append(slot)
        nodes[node.name] = node
    # Every node gets its MGETs before any reply is read, so the masters work at the same time.
    sent = {}
    for name, node_slots in by_node.items():
        try:
            sent[name] = _send(client, nodes[name], [[encoded[i] for i in by_slot[slot]] for slot in node_slots])
        except _NODE_DOWN as exc:
            again.extend(node_slots)
            problem = f"{name}: {exc}"
    for name, (pool, connection) in sent.items():
        node_slots = by_node[name]
        try:
            replies = _replies(connection, len(node_slots))
        except _NODE_DOWN as exc:
            connection.disconnect()
            again.extend(node_slots)
            problem = f"{name}: {exc}"
            continue
        finally:
            pool.release(connection)
        for slot, reply in zip(node_slots, replies, strict=True):
            if isinstance(reply, _MIGRATING):
                problem = _read_one_by_one(client, names, by_slot[slot], values) or problem
            elif isinstance(reply, Exception):  # MOVED, CLUSTERDOWN, LOADING...: after a reload
                again.append(slot)
                problem = f"{name}: {reply}"
            else:
                for index, value in zip(by_slot[slot], reply, strict=True):
                    values[index] = value
    return again, problem


def _mget(keys: list[bytes]) -> bytes:
    """One MGET in the Redis protocol (RESP): an array of bulk strings."""
    return b"".join([b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1), *(b"$%d\r\n%b\r\n" % (len(k), k) for k in keys)])


def _send(client: RedisCluster, node: Any, commands: list[list[bytes]]) -> tuple[Any, Any]:
    """Send one MGET per key list to ``node`` on one of its pooled connections, unread: one write, with
    none of the per-command bookkeeping of redis-py's pipelines (which costs as much as the reads)."""
    pool = client.get_redis_connection(node).connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join([_mget(keys) for keys in commands])])
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise
    return pool, connection


def _replies(connection: Any, count: int) -> list[Any]:
    """``count`` replies; an error reply (MOVED, ASK, CLUSTERDOWN...) is kept in place as its exception."""
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def _read_one_by_one(client: RedisCluster, names: Sequence[str], indices: list[int], values: list[Any]) -> str:
    """GET each key of a migrating slot (the cluster client follows ASK); the last problem met, or ''."""
    problem = ""
    for index in indices:
        try:
            values[index] = client.get(names[index])
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
            problem = str(exc)
    return problem


def _reload_slot_map(client: RedisCluster) -> None:
    try:
        client.nodes_manager.initialize()
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        log.warning("reloading the Redis Cluster slot map failed: %s", escape(str(exc)))
