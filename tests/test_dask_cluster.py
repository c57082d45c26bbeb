"""Acceptance: Redis Cluster (3 masters + 3 replicas) + Dask gives the single Redis + local pool's run; a
master killed under a Dask run costs at most its metrics for that run, and the next run is complete.

The last test kills masters of the module's cluster: it stays last.
"""

from __future__ import annotations

import time

from skyline_analyzer import config, connections
from skyline_analyzer.analyzer.daemon import Analyzer
from tests.scale_data import seed_mixed
from tests.support import NO_ALERTS
from tests.test_cluster_failover import outcome, quiet_master, run_killing, wait_for_failover
from tests.test_daemon_graphite import PlaintextListener
from tests.test_dask_run import anomalies, figures

COUNT = 2400


def test_cluster_and_dask_equal_single_redis_and_local_pool(redis_cluster, redis_conn, dask_cluster, make_settings):
    now = int(time.time())
    seen = {}
    for label, storage, executor in (("single", {}, "local"),
                                     ("cluster", {"REDIS_CLUSTER_NODES": redis_cluster.addresses}, "dask")):
        listener = PlaintextListener()
        try:
            settings = config.load(make_settings(
                **NO_ALERTS, **storage, ANALYZER_PROCESSES=2, ANALYZER_EXECUTOR=executor, DASK_UNITS_PER_RUN=24,
                DASK_SCHEDULER_ADDRESS=dask_cluster.address, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=listener.port))
            conn = connections.connect(settings)
            names = seed_mixed(conn, now, COUNT)
            analyzer = Analyzer(settings)
            report = analyzer.run_once(now=now)
            analyzer.close()
            conn.close()
        finally:
            listener.close()
        seen[label] = (report, figures(listener), len(names))
    (single, single_figures, count), (cluster, cluster_figures, _) = seen["single"], seen["cluster"]
    assert cluster.total_metrics == single.total_metrics == count
    assert cluster.unprocessed == single.unprocessed == 0
    assert cluster.exceptions == single.exceptions
    assert cluster.anomaly_breakdown == single.anomaly_breakdown
    assert anomalies(cluster) == anomalies(single)
    assert cluster_figures == single_figures


def test_a_master_killed_under_a_dask_run(redis_cluster, dask_cluster, load_settings):
    now = int(time.time())
    settings = load_settings(**NO_ALERTS, REDIS_CLUSTER_NODES=redis_cluster.addresses, ANALYZER_EXECUTOR="dask",
                             DASK_SCHEDULER_ADDRESS=dask_cluster.address, DASK_UNITS_PER_RUN=32,
                             ANALYZER_ENGINE="reference")
    conn = connections.connect(settings)
    conn.flushall()
    names = seed_mixed(conn, now, 3000)
    analyzer = Analyzer(settings)
    try:
        started = time.monotonic()
        before = analyzer.run_once(now=now)
        took = time.monotonic() - started
        assert before.unprocessed == 0 and before.anomalies

        victim = quiet_master(redis_cluster, conn)
        during = run_killing(redis_cluster, victim, analyzer, now, took / 3)
        assert during is not None and during.total_metrics == len(names)
        # Not only the victim's keys: until the failover the other masters may answer CLUSTERDOWN too.
        found, exceptions, _, analyzed, _ = outcome(during)
        assert found <= outcome(before)[0]
        assert analyzed + sum(exceptions.values()) + during.unprocessed == len(names)

        wait_for_failover(redis_cluster, victim)
        deadline = time.monotonic() + 60
        while (after := analyzer.run_once(now=now)) is None or after.unprocessed:
            assert time.monotonic() < deadline, "no complete run after the failover"
        assert outcome(after) == outcome(before)
    finally:
        analyzer.close()
        conn.close()
