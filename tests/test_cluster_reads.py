"""Reads on a real Redis Cluster (3 masters, 3 replicas): slot-grouped MGETs, slot migrations, the client.

Every check compares :func:`skyline_analyzer.storage.fetch` with one plain GET per key through redis-py's
cluster client, which routes each key itself.
"""

from __future__ import annotations

import socket
import time

import pytest
import redis
from redis.crc import key_slot

from skyline_analyzer import config, connections, harness, storage
from skyline_analyzer.cluster import ClusterClient
from skyline_analyzer.exceptions import SettingsError
from skyline_analyzer.webapp.store import Store
from tests.support import free_port, write_settings

#: Names a hostile feed can produce: hash-tag braces (a tag must not be honoured differently), non-ASCII,
#: spaces, a long name; plus keys that do not exist.
ODD_NAMES = ["metrics.{a}.x", "metrics.{a}.y", "metrics.}{", "metrics.{}.z", "metrics.héllo wörld",
             "metrics." + "n" * 1000, "metrics.\u2603"]


def plain_gets(conn: ClusterClient, names: list[str]) -> list[bytes | None]:
    return [conn.get(name) for name in names]


def store(conn: ClusterClient, names: list[str]) -> None:
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.set(name, name.encode() * 3)
    pipe.execute()


def test_slot_grouped_reads_equal_plain_gets(cluster_conn):
    names = [f"metrics.host{n}.cpu" for n in range(3000)] + ODD_NAMES
    store(cluster_conn, names[::2] + ODD_NAMES)
    wanted = [*names, "metrics.host7.cpu", "metrics.absent"]  # a repeated name and a missing key
    read, values = storage.fetch(cluster_conn, wanted)
    assert list(read) == wanted
    assert values == plain_gets(cluster_conn, wanted)
    assert len({key_slot(name.encode()) for name in names}) > 2000  # the names really span the slots


def test_a_single_redis_is_read_with_one_mget(redis_conn):
    redis_conn.set("metrics.a", b"1")
    assert storage.fetch(redis_conn, ["metrics.a", "metrics.b"]) == (["metrics.a", "metrics.b"], [b"1", None])


def node_id(cluster, port: int) -> str:
    with cluster.node(port) as client:
        return client.execute_command("CLUSTER MYID").decode()


def owner(cluster, slot: int) -> int:
    with cluster.node(cluster.masters()[0]) as client:
        for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
    raise AssertionError(f"slot {slot} has no owner")


def begin_migration(cluster, slot: int, source: int, target: int) -> None:
    with cluster.node(target) as client:
        client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", node_id(cluster, source))
    with cluster.node(source) as client:
        client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", node_id(cluster, target))


def move_keys(cluster, slot: int, source: int, target: int, count: int) -> None:
    with cluster.node(source) as client:
        for key in client.execute_command("CLUSTER GETKEYSINSLOT", slot, count):
            client.execute_command("MIGRATE", "127.0.0.1", target, key, 0, 5000)


def end_migration(cluster, slot: int, target: int) -> None:
    target_id = node_id(cluster, target)
    for port in cluster.masters():
        with cluster.node(port) as client:
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)


def names_in_one_slot(count: int) -> tuple[int, list[str]]:
    """``count`` plain metric names (no hash tag) that share a slot, found by search."""
    by_slot: dict[int, list[str]] = {}
    n = 0
    while True:
        name = f"metrics.m{n}"
        found = by_slot.setdefault(key_slot(name.encode()), [])
        found.append(name)
        if len(found) == count:
            return key_slot(name.encode()), found
        n += 1


def test_moved_is_followed_after_a_slot_migration(redis_cluster, cluster_conn):
    slot, same_slot = names_in_one_slot(3)
    others = [f"metrics.o{n}" for n in range(500)]
    store(cluster_conn, same_slot + others)
    assert storage.fetch(cluster_conn, same_slot + others)[0] == same_slot + others  # the slot map is loaded
    source = owner(redis_cluster, slot)
    target = next(port for port in redis_cluster.masters() if port != source)
    begin_migration(redis_cluster, slot, source, target)
    move_keys(redis_cluster, slot, source, target, 100)
    end_migration(redis_cluster, slot, target)
    # The client still maps the slot to the source, which now answers MOVED.
    assert cluster_conn.client.nodes_manager.get_node_from_slot(slot).port == source
    read, values = storage.fetch(cluster_conn, same_slot + others)
    assert list(read) == same_slot + others
    assert values == plain_gets(cluster_conn, same_slot + others)
    assert cluster_conn.client.nodes_manager.get_node_from_slot(slot).port == target


def test_a_slot_half_migrated_is_read_key_by_key(redis_cluster, cluster_conn):
    slot, same_slot = names_in_one_slot(4)
    store(cluster_conn, same_slot)
    source = owner(redis_cluster, slot)
    target = next(port for port in redis_cluster.masters() if port != source)
    begin_migration(redis_cluster, slot, source, target)
    try:
        move_keys(redis_cluster, slot, source, target, 2)  # the MGET on the source answers TRYAGAIN
        read, values = storage.fetch(cluster_conn, same_slot)
        assert list(read) == same_slot
        assert values == [name.encode() * 3 for name in same_slot]
        move_keys(redis_cluster, slot, source, target, 10)  # now every key answers ASK
        assert storage.fetch(cluster_conn, same_slot) == (same_slot, [name.encode() * 3 for name in same_slot])
    finally:
        move_keys(redis_cluster, slot, source, target, 10)
        end_migration(redis_cluster, slot, target)


def test_the_cluster_client_is_built_on_first_use(tmp_path):
    settings = config.load(write_settings(tmp_path, REDIS_CLUSTER_NODES=[f"127.0.0.1:{free_port()}"]))
    conn = connections.connect(settings)  # nothing listens there: no error yet
    with pytest.raises(redis.ConnectionError, match="slot map"):
        conn.ping()
    assert not connections.RedisLink(settings).ping()
    conn.close()


@pytest.mark.parametrize("bad", ["localhost", "host:0", "host:70000", ":7000", "a b:7000", "host:x"])
def test_a_malformed_startup_node_is_refused(bad, tmp_path):
    with pytest.raises(SettingsError, match="REDIS_CLUSTER_NODES"):
        config.load(write_settings(tmp_path, REDIS_CLUSTER_NODES=["127.0.0.1:7000", bad]))


def test_the_web_app_store_reads_from_the_cluster(redis_cluster, load_settings):
    settings = load_settings(REDIS_CLUSTER_NODES=redis_cluster.addresses[:1])
    conn = connections.connect(settings)
    conn.flushall()
    pairs = [[1700000000 + 60 * n, float(n)] for n in range(100)]
    harness.seed_redis(conn, {"web.one": pairs, "web.two": pairs}, settings.FULL_NAMESPACE)
    conn.set("analyzer", 1700000000)
    store = Store(connections.connect(settings), settings)
    assert store.index.search("web.", 10)[0] == ["web.one", "web.two"]
    assert list(store.series("web.two").values) == [float(n) for n in range(100)]
    assert store.heartbeat() == 1700000000
    store.conn.close()
    conn.close()


def test_the_password_goes_to_every_node_and_a_refused_one_stops_the_start_up(tmp_path):
    (tmp_path / "nodes").mkdir()
    with harness.private_cluster(tmp_path / "nodes", masters=3, replicas=0, password="s3cret") as cluster:
        settings = config.load(write_settings(tmp_path, REDIS_CLUSTER_NODES=cluster.addresses[:2],
                                              REDIS_PASSWORD="s3cret"))
        conn = connections.connect(settings)
        store(conn, [f"metrics.p{n}" for n in range(200)])
        assert storage.fetch(conn, ["metrics.p7", "metrics.p150"])[1] == [b"metrics.p7" * 3, b"metrics.p150" * 3]
        conn.close()
        connections.check_credentials(settings)
        for password in ("wrong", None):
            refused = config.load(write_settings(tmp_path, REDIS_CLUSTER_NODES=cluster.addresses[:2],
                                                 REDIS_PASSWORD=password))
            with pytest.raises(connections.RedisAuthError, match="REDIS_PASSWORD"):
                connections.check_credentials(refused)


def test_without_replicas_a_dead_master_costs_its_keys_then_clusterdown_costs_all_never_an_error(tmp_path):
    (tmp_path / "nodes").mkdir()
    with harness.private_cluster(tmp_path / "nodes", masters=3, replicas=0) as cluster:
        settings = config.load(write_settings(tmp_path, REDIS_CLUSTER_NODES=cluster.addresses))
        conn = connections.connect(settings)
        names = [f"metrics.d{n}" for n in range(600)]
        store(conn, names)
        victim = cluster.masters()[0]
        on_victim = {name for name in names
                     if conn.client.nodes_manager.get_node_from_slot(conn.client.keyslot(name)).port == victim}
        cluster.kill(victim)
        read, values = storage.fetch(conn, names)  # before the others mark it failed: they still serve
        assert set(read) == set(names) - on_victim
        assert values == [name.encode() * 3 for name in read]
        deadline = time.monotonic() + 30
        while storage.fetch(conn, names)[0]:  # the cluster state turns to fail: CLUSTERDOWN for every key
            assert time.monotonic() < deadline, "the cluster never stopped serving"
            time.sleep(0.2)
        conn.close()


def test_a_dead_replica_costs_nothing(redis_cluster, cluster_conn):
    masters = redis_cluster.masters()
    replica = next(port for port in redis_cluster.ports if port not in masters)
    store(cluster_conn, ["metrics.r1", "metrics.r2"])
    redis_cluster.kill(replica)
    assert cluster_conn.ping()  # what every loop's RedisLink.ping sends
    assert storage.fetch(cluster_conn, ["metrics.r1", "metrics.r2"]) == (["metrics.r1", "metrics.r2"],
                                                                         [b"metrics.r1" * 3, b"metrics.r2" * 3])


def test_a_private_cluster_gets_a_distinct_port_for_every_node_and_bus() -> None:
    """Ports picked one at a time may repeat (the kernel can hand out a port it just handed out): two nodes
    then shared a port and a directory, and the cluster fixture failed to start. They are picked together."""
    ports = harness.distinct_free_ports(200)
    assert len(set(ports)) == 200
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free again once chosen
