"""A Redis Cluster master dies (SIGKILL) under a running Analyzer: the run completes or reports the metrics it
could not read as unprocessed, and once a replica is promoted the next run of the same daemon is complete.
"""

from __future__ import annotations

import threading
import time

from skyline_analyzer import connections, harness, synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.cluster import ClusterClient
from tests.support import NO_ALERTS

#: Seconds allowed for the promotion of a replica (the test cluster's node timeout is 1 s).
FAILOVER_TIMEOUT = 60.0


def slot_owner(conn: ClusterClient, key: str) -> int:
    return conn.client.nodes_manager.get_node_from_slot(conn.client.keyslot(key)).port


def outcome(report) -> tuple:
    return ({(a.base_name, a.value, a.timestamp, a.triggered) for a in report.anomalies}, report.exceptions,
            report.anomaly_breakdown, report.total_analyzed, report.unprocessed)


def wait_for_failover(cluster: harness.PrivateCluster, dead: int) -> None:
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    while True:
        masters = cluster.masters()
        if len(masters) == 3 and dead not in masters:
            break
        assert time.monotonic() < deadline, f"no replica took over from {dead}: masters {masters}"
        time.sleep(0.2)
    cluster.wait_ok(FAILOVER_TIMEOUT)


def next_report(analyzer: Analyzer, now: int):
    """The daemon's next completed run: while a node is missing from its slot map, a run may not start."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT
    while (report := analyzer.run_once(now=now)) is None:
        assert time.monotonic() < deadline, "no run completed after the failover"
    return report


def quiet_master(cluster: harness.PrivateCluster, conn: ClusterClient) -> int:
    """A master holding neither the heartbeat nor ``metrics.unique_metrics``: a run can start without it."""
    busy = {slot_owner(conn, "analyzer"), slot_owner(conn, "metrics.unique_metrics")}
    return next(port for port in cluster.masters() if port not in busy)


def run_killing(cluster: harness.PrivateCluster, victim: int, analyzer: Analyzer, now: int, after: float):
    """One run with the master ``victim`` SIGKILLed ``after`` seconds in; its report."""
    killer = threading.Timer(after, cluster.kill, [victim])
    killer.start()
    try:
        return analyzer.run_once(now=now)
    finally:
        killer.join()


def test_a_master_killed_mid_run_costs_at_most_its_metrics_for_one_run(redis_cluster, load_settings):
    now = int(time.time())
    metrics = synthetic.make_metrics(3000, end=now, anomalous=20, seed=5)
    settings = load_settings(**NO_ALERTS, ANALYZER_PROCESSES=2, REDIS_CLUSTER_NODES=redis_cluster.addresses)
    conn = connections.connect(settings)
    harness.seed_redis(conn, metrics, settings.FULL_NAMESPACE)
    full_keys = [f"{settings.FULL_NAMESPACE}{name}" for name in metrics]
    analyzer = Analyzer(settings)
    started = time.monotonic()
    before = analyzer.run_once(now=now)
    took = time.monotonic() - started
    assert before.unprocessed == 0 and len(before.anomalies) >= 20

    victim = quiet_master(redis_cluster, conn)
    on_victim = sum(slot_owner(conn, key) == victim for key in full_keys)
    during = run_killing(redis_cluster, victim, analyzer, now, took / 3)
    assert during is not None and during.total_metrics == len(metrics)
    assert during.unprocessed <= on_victim
    anomalies, exceptions, _, analyzed, _ = outcome(during)
    assert anomalies <= outcome(before)[0]
    assert analyzed + sum(exceptions.values()) + during.unprocessed == len(metrics)
    if during.unprocessed == 0:  # the kill came after every read
        assert outcome(during) == outcome(before)

    wait_for_failover(redis_cluster, victim)
    assert outcome(next_report(analyzer, now)) == outcome(before)

    # Losing the master of metrics.unique_metrics: no run can start until its replica takes over.
    fresh = connections.connect(settings)
    owner = slot_owner(fresh, "metrics.unique_metrics")
    fresh.close()
    redis_cluster.kill(owner)
    wait_for_failover(redis_cluster, owner)
    assert outcome(next_report(analyzer, now)) == outcome(before)
    conn.close()
