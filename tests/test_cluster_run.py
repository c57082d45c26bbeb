"""Horizon -> Redis Cluster -> Analyzer gives exactly what Horizon -> one Redis -> Analyzer gives.

The same few thousand series (the 60 s golden vectors, synthetic series with spikes, and series sent
through a real Horizon process) go into the session's single Redis and into a 3+3 Redis Cluster; one
Analyzer run over each, with the local process pool, must report the same anomalies, the same exception
counts and send the same figures to Graphite.
"""

from __future__ import annotations

import time

from skyline_analyzer import connections, harness, keys, synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.worker import EXCEPTION_SETS
from tests.support import NO_ALERTS, vector_input
from tests.test_daemon_graphite import PlaintextListener

CORPUS_NOW = 1700000000
#: Figures that measure time, not outcomes.
TIMED = ("run_time", "duration", "projected")


def figures(payload: bytes) -> dict[str, str]:
    """``name -> value`` of one run's carbon lines, the timing figures left out."""
    lines = (line.split(" ") for line in payload.decode().splitlines())
    return {name: value for name, value, _ in lines if not name.endswith(TIMED) and ".algorithm_" not in name}


def exception_sets(conn) -> dict[str, set[bytes]]:
    return {key: {m for m in conn.smembers(key) if not m.startswith(keys.UPDATED_AT_MARKER.encode())}
            for key in EXCEPTION_SETS.values()}


def test_the_cluster_run_equals_the_single_redis_run(redis_cluster, redis_conn, load_settings, tmp_path):
    now = int(time.time())
    delta = now - CORPUS_NOW
    vectors = {name: [[t + delta, v] for t, v in pairs] for name, pairs in vector_input("corpus_60s").items()}
    seeded = {**vectors, **synthetic.make_metrics(2500, end=now, anomalous=25, seed=11)}
    via_horizon = {f"horizon.{name}": pairs
                   for name, pairs in synthetic.make_metrics(150, end=now, anomalous=3, seed=99).items()}
    listener = PlaintextListener()
    common = {**NO_ALERTS, "ANALYZER_PROCESSES": 2, "GRAPHITE_HOST": "127.0.0.1", "CARBON_PORT": listener.port}
    try:
        single = load_settings(**common)
        # Horizon first: its Roomba would delete the vectors' stale series (as v1.2.8's would) if a pass
        # ran after they were seeded.
        (tmp_path / "single").mkdir()
        harness.ingest(single, via_horizon, tmp_path / "single")
        harness.seed_redis(redis_conn, seeded, single.FULL_NAMESPACE)
        single_report = Analyzer(single).run_once(now=now)

        clustered = load_settings(**common, REDIS_CLUSTER_NODES=redis_cluster.addresses[:3])
        cluster_conn = connections.connect(clustered)
        cluster_conn.flushall()
        (tmp_path / "cluster").mkdir()
        harness.ingest(clustered, via_horizon, tmp_path / "cluster")
        harness.seed_redis(cluster_conn, seeded, clustered.FULL_NAMESPACE)
        cluster_report = Analyzer(clustered).run_once(now=now)
    finally:
        listener.close()

    total = len(seeded) + len(via_horizon)
    assert single_report.total_metrics == cluster_report.total_metrics == total
    assert cluster_report.unprocessed == single_report.unprocessed == 0
    anomalies = {(a.base_name, a.value, a.timestamp, a.triggered) for a in single_report.anomalies}
    assert len(anomalies) >= 28  # the spikes, and the corpus's anomalies
    assert {(a.base_name, a.value, a.timestamp, a.triggered) for a in cluster_report.anomalies} == anomalies
    assert cluster_report.exceptions == single_report.exceptions
    assert cluster_report.anomaly_breakdown == single_report.anomaly_breakdown
    assert cluster_report.total_analyzed == single_report.total_analyzed
    assert len(listener.connections) == 2
    assert figures(listener.connections[1]) == figures(listener.connections[0])
    assert "skyline.analyzer.YOUR_HOSTNAME.total_anomalies" in figures(listener.connections[0])
    assert exception_sets(cluster_conn) == exception_sets(redis_conn)
    cluster_conn.close()
