"""Scale-out: the same metrics through (a) one Redis + the local pool and (b) the cluster + Dask, on this machine.

The script seeds ``--metrics`` series of 1,440 points (60 s data ending now, the shapes of
``benchmarks/algorithms.py``) into (a) a private redis-server and (b) a private Redis Cluster of 3 masters
and 3 replicas when the harness provides one (``harness.private_cluster``), else the same single Redis.
It then times real Analyzer runs (:meth:`skyline_analyzer.analyzer.daemon.Analyzer.run_once`):

* ``local``: ``ANALYZER_EXECUTOR = 'local'`` with ``--workers`` forked workers;
* ``dask``: ``ANALYZER_EXECUTOR = 'dask'`` against a private ``dask scheduler`` with ``--workers`` real
  ``dask worker`` processes (one thread each), ``--units`` work units per run. One warm-up run first
  (the workers import the package on their first unit).

For each it prints the wall time, metrics per second, CPU seconds per process kind (the Analyzer parent, its
workers, the Dask scheduler, the Redis servers) and, per Redis node, the keys it holds, its CPU seconds and
the bytes it sent (what a run reads). The fastest of ``--repeat`` runs is kept (the machine is shared).
Nothing is asserted: the figures feed docs/scale-out.md's capacity model.

    .venv/bin/python benchmarks/scale_out.py [--metrics 20000] [--workers 2] [--units 32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from corpora import calm_chunk  # noqa: E402
from end_to_end import STEP, encode_block  # noqa: E402

from skyline_analyzer import config, connections, harness, keys  # noqa: E402
from skyline_analyzer.analyzer.daemon import Analyzer  # noqa: E402
from skyline_analyzer.dask_cluster import private_dask  # noqa: E402

#: Points per series: a day at 60 s, as the end-to-end benchmark seeds by default.
POINTS = 1440


def seed(conn: Any, count: int, now: int) -> None:
    for first in range(0, count, 1000):
        series, names = calm_chunk(first, min(1000, count - first), POINTS, STEP, 1_700_000_000)
        shift = now - 1_700_000_000
        pipe = conn.pipeline(transaction=False)
        full_keys = [keys.metric("metrics.", name.removeprefix("metrics.")) for name in names]
        for full_key, one in zip(full_keys, series, strict=True):
            pipe.set(full_key, encode_block(one.timestamps + shift, one.values))
        pipe.execute()
        conn.sadd(keys.unique_metrics("metrics."), *full_keys)


def node_clients(conn: Any) -> list[tuple[str, redis.Redis]]:
    """(name, client) of every master; a plain Redis is its own single node."""
    if hasattr(conn, "get_primaries"):
        return [(node.name, node.redis_connection) for node in conn.get_primaries()]
    return [("redis", conn)]


def node_figures(conn: Any) -> dict[str, dict[str, float]]:
    figures = {}
    for name, node in node_clients(conn):
        cpu, stats = node.info("cpu"), node.info("stats")
        figures[name] = {"cpu": cpu["used_cpu_user"] + cpu["used_cpu_sys"], "out": stats["total_net_output_bytes"],
                         "keys": node.dbsize()}
    return figures


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def measure(settings: config.Settings, conn: Any, now: int, dask_pids: dict[str, list[int]], repeat: int) -> dict:
    best: dict | None = None
    analyzer = Analyzer(settings)
    try:
        for _ in range(repeat):
            nodes0, dask0 = node_figures(conn), {k: cpu_of(v) for k, v in dask_pids.items()}
            self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            report = analyzer.run_once(float(now))
            seconds = time.perf_counter() - started
            self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            nodes1 = node_figures(conn)
            run = {
                "seconds": seconds,
                "metrics": report.total_metrics,
                "unprocessed": report.unprocessed,
                "anomalies": report.total_anomalies,
                "cpu": {
                    "parent": (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime),
                    "forked workers": (children1.ru_utime + children1.ru_stime)
                    - (children0.ru_utime + children0.ru_stime),
                    **{k: cpu_of(v) - dask0[k] for k, v in dask_pids.items()},
                    "redis": sum(nodes1[n]["cpu"] - nodes0[n]["cpu"] for n in nodes1),
                },
                "nodes": {n: {"keys": nodes1[n]["keys"], "cpu": nodes1[n]["cpu"] - nodes0[n]["cpu"],
                              "out_mb": (nodes1[n]["out"] - nodes0[n]["out"]) / 1e6} for n in nodes1},
            }
            if best is None or run["seconds"] < best["seconds"]:
                best = run
    finally:
        analyzer.close()
    assert best is not None
    return best


def show(label: str, run: dict) -> None:
    rate = run["metrics"] / run["seconds"]
    print(f"\n{label}: {run['seconds']:.2f} s wall, {rate:,.0f} metrics/s, {run['metrics']} metrics, "
          f"{run['anomalies']} anomalies, {run['unprocessed']} unprocessed")
    print("  CPU seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in run["cpu"].items() if v))
    for name, node in run["nodes"].items():
        print(f"  node {name}: {node['keys']} keys, {node['cpu']:.2f} CPU s, {node['out_mb']:.1f} MB sent")


@contextlib.contextmanager
def storage(kind: str, directory: Path) -> Iterator[tuple[dict, Any]]:
    """(settings overrides, client) for a private single Redis or, when the harness has one, a cluster."""
    if kind == "cluster":
        with harness.private_cluster(directory) as cluster:  # type: ignore[attr-defined]
            overrides = {"REDIS_CLUSTER_NODES": cluster.addresses}
            conn = connections.connect(config.load().replace(**overrides))
            yield overrides, conn
            conn.close()
        return
    with harness.private_redis(directory) as socket_path:
        conn = redis.Redis(unix_socket_path=socket_path)
        yield {"REDIS_SOCKET_PATH": socket_path, "REDIS_HOST": None}, conn
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    now = int(time.time())
    cluster_kind = "cluster" if hasattr(harness, "private_cluster") else "single"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = config.load().replace(
            LOG_PATH=tmp, PID_PATH=tmp, SKYLINE_TMP_DIR=str(root / "tmp"), ANOMALY_DUMP=str(root / "anomalies.json"),
            GRAPHITE_HOST="", ENABLE_ALERTS=False, ALERT_ON_STALE_METRICS=False, MAX_ANALYZER_PROCESS_RUNTIME=3600,
            ANALYZER_PROCESSES=args.workers, DASK_UNITS_PER_RUN=args.units)
        print(f"{args.metrics} metrics of {POINTS} points; {args.workers} workers either way; "
              f"{psutil.cpu_count()} CPUs on this machine")
        (root / "a").mkdir()
        with storage("single", root / "a") as (overrides, conn):
            seed(conn, args.metrics, now)
            local = measure(base.replace(**overrides), conn, now, {}, args.repeat)
        show("(a) single Redis + local pool", local)
        (root / "b").mkdir()
        with storage(cluster_kind, root / "b") as (overrides, conn), private_dask(root / "dask", args.workers) as dask:
            seed(conn, args.metrics, now)
            settings = base.replace(**overrides, ANALYZER_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=dask.address)
            pids = {"dask workers": [p.pid for p in dask.workers.values()], "dask scheduler": [dask.scheduler.pid]}
            measure(settings, conn, now, pids, 1)
            remote = measure(settings, conn, now, pids, args.repeat)
        label = "cluster (3 masters + 3 replicas)" if cluster_kind == "cluster" else "single Redis"
        show(f"(b) {label} + Dask", remote)
        print(f"\nwall (b) / (a): {remote['seconds'] / local['seconds']:.2f}; CPU (b) / (a): "
              f"{sum(remote['cpu'].values()) / sum(local['cpu'].values()):.2f}")


if __name__ == "__main__":
    main()
