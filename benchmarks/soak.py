"""Soak benchmark: many short Analyzer runs over many metrics; the parent's resident memory must not grow.

Starts a private redis-server, seeds ``--metrics`` synthetic metrics (``--points`` datapoints each, a few
with a spike), runs the real daemon loop (:meth:`Analyzer.run_forever`, forking fresh workers every run)
for ``--runs`` runs, and prints the parent's resident set size (VmRSS) at the first, tenth and last run,
with the ratios measured in this same run. Nothing is asserted: the figures are for the reader.

    .venv/bin/python benchmarks/soak.py                  # 200 runs over 5,000 metrics
    .venv/bin/python benchmarks/soak.py --runs 20        # a quicker look
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import redis

from skyline_analyzer import config, logs, synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.cli.demo import private_redis, seed_redis


def rss_kib() -> int:
    """The current resident set size of this process, in KiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=5000)
    parser.add_argument("--points", type=int, default=60, help="datapoints per metric (short runs)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skyline-soak-") as tmp, private_redis(Path(tmp)) as socket_path:
        root = Path(tmp)
        settings = config.load().replace(
            REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None, LOG_PATH=tmp, PID_PATH=tmp,
            SKYLINE_TMP_DIR=str(root / "tmp"), ANOMALY_DUMP=str(root / "anomalies.json"), GRAPHITE_HOST="",
            ENABLE_ALERTS=False, ALERT_ON_STALE_METRICS=False, ANALYZER_PROCESSES=args.processes,
            ANALYZER_OPTIMUM_RUN_DURATION=1,
        )
        conn = redis.Redis(unix_socket_path=socket_path)
        metrics = synthetic.make_metrics(args.metrics, int(time.time()), anomalous=10, points=args.points)
        seed_redis(conn, metrics, settings.FULL_NAMESPACE)
        conn.close()
        del metrics
        logs.setup(tmp, "analyzer", level=logging.INFO)

        samples: list[tuple[int, int, float, int]] = []

        def record(report: RunReport) -> None:
            samples.append((len(samples) + 1, rss_kib(), report.run_time, report.total_anomalies))
            number = len(samples)
            if number in (1, 10) or number % 20 == 0 or number == args.runs:
                print(f"run {number:4d}: parent RSS {samples[-1][1] / 1024:7.1f} MiB, run time "
                      f"{report.run_time:5.2f} s, {report.total_metrics} metrics, {report.total_anomalies} anomalies",
                      flush=True)

        started = time.monotonic()
        Analyzer(settings).run_forever(args.runs, on_report=record)
        elapsed = time.monotonic() - started

    first, tenth, last = samples[0][1], samples[min(9, len(samples) - 1)][1], samples[-1][1]
    peak = max(s[1] for s in samples)
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"\n{len(samples)} runs over {args.metrics} metrics x {args.points} points in {elapsed:.1f} s "
          f"({elapsed / len(samples):.2f} s per run, {args.processes} workers)")
    print(f"parent RSS: first run {first / 1024:.1f} MiB, run 10 {tenth / 1024:.1f} MiB, "
          f"last run {last / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB")
    print(f"ratios: last/first = {last / first:.3f}, last/run10 = {last / tenth:.3f}")
    print(f"largest worker (or redis-server) peak RSS: {workers_peak / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
