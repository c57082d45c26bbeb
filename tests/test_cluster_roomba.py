"""Roomba on a real Redis Cluster (3 masters, 3 replicas): the same values and set as on a single Redis.

The write script touches the series key only and the set is changed by a separate SREM, so a pass works
when the key and ``metrics.unique_metrics`` live on different masters.
"""

from __future__ import annotations

from skyline_analyzer import keys
from skyline_analyzer.codec import encode
from skyline_analyzer.horizon.roomba import Vacuum

NOW = 1_700_000_000
DURATION = 3600


def values_by_shape() -> dict[str, bytes]:
    """Keys the fast path trims, the reference path sorts and de-duplicates, Roomba deletes or zaps."""
    values = {}
    for n in range(300):
        points = [(NOW - DURATION - 600 + 60 * i, float(n + i)) for i in range(80)]
        values[f"metrics.sorted.{n}"] = encode(points)
        values[f"metrics.unsorted.{n}"] = encode(points[::-1] + points[-3:])
    for n in range(50):
        values[f"metrics.old.{n}"] = encode([(NOW - 2 * DURATION + i, 1.0) for i in range(5)])
        values[f"metrics.garbage.{n}"] = b"\xc1not msgpack"
    return values


def seed(conn, values: dict[str, bytes]) -> None:
    pipe = conn.pipeline(transaction=False)
    for name, value in values.items():
        pipe.set(name, value)
    pipe.execute()
    conn.sadd(keys.unique_metrics("metrics."), *values)


def test_a_pass_on_a_cluster_stores_what_a_single_redis_stores(cluster_conn, redis_conn):
    values = values_by_shape()
    work = sorted(name.encode() for name in values)
    results = []
    for conn in (redis_conn, cluster_conn):
        seed(conn, values)
        result = Vacuum(conn, "metrics.", DURATION).run(work, NOW)
        stored = {name: conn.get(name) for name in values}
        members = {m.decode() for m in conn.smembers(keys.unique_metrics("metrics."))}
        results.append((result, stored, members))
    (single, single_values, single_set), (cluster, cluster_values, cluster_set) = results
    assert cluster_values == single_values
    assert cluster_set == single_set
    assert (cluster.trimmed, cluster.euthanized, cluster.blocked) == (single.trimmed, single.euthanized, 0)
    assert single.euthanized == 100 and single.trimmed == 600
    assert not any(name.startswith(("metrics.old.", "metrics.garbage.")) for name in cluster_set)
