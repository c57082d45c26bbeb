"""``skyline-analyzer demo``: the Analyzer daemon end to end on a private Redis, then clean up.

Starts ``redis-server`` on a unix socket in a temporary directory, sends synthetic metrics (a handful ending
in a spike) through a real Horizon (``skyline-analyzer horizon``, pickle protocol, as carbon-relay would),
runs the daemon loop for a few runs with a short ``ANALYZER_OPTIMUM_RUN_DURATION``, prints the anomalies
and each run's summary, and removes everything. :func:`seed_redis` writes the same data directly (the soak
benchmark uses it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from skyline_analyzer import codec, config, keys, logs, synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.horizon.daemon import ingest


def horizon_summary(log: Path) -> str:
    """The non-zero counters of Horizon's last report in its log."""
    reports = [line.split(" :: horizon :: ", 1)[1] for line in log.read_text().splitlines()
               if " :: horizon :: listen." in line]
    return ", ".join(item for item in reports[-1].split(", ") if not item.endswith(" 0")) if reports else "none"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the daemon on a private Redis seeded with synthetic metrics",
        description="Start a private redis-server, seed synthetic metrics, run the Analyzer, print what it found.",
    )
    parser.add_argument("--metrics", type=int, default=300, help="how many metrics to seed (default 300)")
    parser.add_argument("--anomalous", type=int, default=6, help="how many of them end in a spike (default 6)")
    parser.add_argument("--runs", type=int, default=2, help="how many runs (default 2)")
    parser.add_argument("--processes", type=int, default=2, help="ANALYZER_PROCESSES (default 2)")
    parser.add_argument("--run-duration", type=int, default=3, help="ANALYZER_OPTIMUM_RUN_DURATION (default 3)")
    parser.set_defaults(handler=run)


def seed_redis(conn: Any, metrics: Mapping[str, Sequence[Sequence[Any]]], namespace: str) -> None:
    """Write each series as Horizon leaves it: ``metrics.<name>`` plus membership of the unique-metrics set."""
    pipe = conn.pipeline(transaction=False)
    for name, pairs in metrics.items():
        full_key = keys.metric(namespace, name)
        pipe.set(full_key, codec.encode(pairs))
        pipe.sadd(keys.unique_metrics(namespace), full_key)
    pipe.execute()


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server listening only on ``<directory>/redis.sock``, no persistence; yields the socket path."""
    binary = shutil.which("redis-server") or "redis-server"
    socket_path = str(directory / "redis.sock")
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=socket_path)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {socket_path}") from None
                time.sleep(0.05)
        client.close()
        yield socket_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def print_report(number: int, report: RunReport) -> None:
    print(f"\nrun {number}: {report.total_metrics} metrics, {report.total_analyzed} analysed, "
          f"{report.total_anomalies} anomalous, {report.run_time:.2f} s")
    print(f"  exception stats    :: {report.exceptions}")
    print(f"  anomaly breakdown  :: {report.anomaly_breakdown}")
    for anomaly in sorted(report.anomalies, key=lambda a: a.base_name):
        print(f"  anomalous: {anomaly.base_name} = {anomaly.value} at {anomaly.timestamp}"
              f" ({', '.join(anomaly.triggered)})")


def demo(args: argparse.Namespace, base: config.Settings, root: Path, socket_path: str) -> None:
    settings = base.replace(
        REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None,
        LOG_PATH=str(root), PID_PATH=str(root), SKYLINE_TMP_DIR=str(root / "tmp"),
        ANOMALY_DUMP=str(root / "anomalies.json"), GRAPHITE_HOST="",
        ENABLE_ALERTS=False, ALERT_ON_STALE_METRICS=False, ENABLE_MIRAGE=False,
        ANALYZER_PROCESSES=args.processes, ANALYZER_OPTIMUM_RUN_DURATION=args.run_duration,
    )
    metrics = synthetic.make_metrics(args.metrics, int(time.time()), anomalous=args.anomalous)
    print(f"sending {args.metrics} synthetic metrics ({args.anomalous} ending in a spike) through Horizon's pickle "
          f"listener into a private redis-server at {socket_path}")
    sent = ingest(settings, metrics, root)
    print(f"Horizon wrote all {sent} datapoints; its counters: {horizon_summary(root / 'horizon.log')}")
    print(f"running the Analyzer for {args.runs} runs (ANALYZER_OPTIMUM_RUN_DURATION = {args.run_duration} s)")
    logs.setup(root, "analyzer")
    completed = 0

    def show(report: RunReport) -> None:
        nonlocal completed
        completed += 1
        print_report(completed, report)

    Analyzer(settings).run_forever(args.runs, on_report=show)
    print(f"\nanomalies.json after the last run: {(root / 'anomalies.json').read_text()}")
    print("\nthe daemon's log, last run's summary:")
    for line in (root / "analyzer.log").read_text().splitlines()[-6:]:
        print(f"  {line}")


def run(args: argparse.Namespace) -> int:
    base = config.load()
    if shutil.which("redis-server") is None:
        print("error :: redis-server is not installed (`make deps` installs it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="skyline-demo-") as tmp, private_redis(Path(tmp)) as socket_path:
        demo(args, base, Path(tmp), socket_path)
    print("\nstopped the private redis-server and removed its directory")
    return 0
