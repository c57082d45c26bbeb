"""What recording for ``skyline-analyzer tune`` costs, and an example of its report.

Two parts, each comparing in the same run (the machine is shared: read the ratios):

1. **Algorithms only**, in this process, chunk by chunk (500 series, as a worker's MGET chunk): each chunk
   is analysed with the plain run-metric recorder and with the tune recorder (plus its ``observe``), in
   alternating order; then the end-of-run completion of the sample is timed. Corpora: ``--series``
   synthetic series of 1,440 points (``benchmarks/algorithms.py``'s: 1 % spikes, mostly calm) and both
   golden-vector corpora.
2. **Daemon runs** over ``--metrics`` synthetic metrics in a private redis-server, ``--runs`` runs
   alternating ``TUNE_SAMPLE_SIZE = 0`` (nothing recorded) and the default; the median run time of each
   and their ratio, then ``tune``'s report on the recorded runs.

    .venv/bin/python benchmarks/tune.py [--series 10000] [--metrics 10000] [--runs 8] [--processes 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from algorithms import NOW, vectors  # noqa: E402
from corpora import calm_chunk  # noqa: E402
from end_to_end import seed  # noqa: E402

from skyline_analyzer import config  # noqa: E402
from skyline_analyzer.analyzer import tune_history, tune_report  # noqa: E402
from skyline_analyzer.analyzer.daemon import Analyzer  # noqa: E402
from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder  # noqa: E402
from skyline_analyzer.analyzer.tune_record import TuneRecorder  # noqa: E402
from skyline_analyzer.cli.tune import render  # noqa: E402
from skyline_analyzer.detection import engine  # noqa: E402
from skyline_analyzer.harness import private_redis  # noqa: E402

CHUNK = 500


def recording_cost(label: str, chunks: list, settings: config.Settings, tmp: str) -> None:
    """Analysis time with the plain and the tune recorder, chunk by chunk alternately; observe and completion."""
    plain, tune = RunMetricsRecorder(tmp), TuneRecorder(tmp, settings, NOW, seed=0)
    plain_seconds = tune_seconds = 0.0
    for series, names in chunks:
        # Warm up: a first call pays for imports and caches that neither recorder should be charged.
        engine.analyse(series, names, settings, NOW)
    for index, (series, names) in enumerate(chunks):
        for which in ((0, 1) if index % 2 else (1, 0)):
            started = time.perf_counter()
            if which:
                tune.observe(series, engine.analyse(series, names, settings, NOW, recorder=tune))
                tune_seconds += time.perf_counter() - started
            else:
                engine.analyse(series, names, settings, NOW, recorder=plain)
                plain_seconds += time.perf_counter() - started
    started = time.perf_counter()
    record = tune.record_of_run()
    completion = time.perf_counter() - started
    observe = record["record_seconds"] - completion
    count = sum(len(names) for _, names in chunks)
    print(f"{label:<24}{count:>8,}{plain_seconds:>10.3f}{tune_seconds:>10.3f}{tune_seconds / plain_seconds:>8.3f}"
          f"{1e3 * observe:>11.1f}{1e6 * observe / count:>8.2f}{1e3 * completion:>12.1f}"
          f"{100 * record['record_seconds'] / plain_seconds:>9.2f} %")


def daemon_runs(metrics: int, runs: int, processes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, private_redis(Path(tmp)) as socket_path:
        seed(socket_path, metrics, int(time.time()), "metrics.")
        base = config.load().replace(
            REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None, LOG_PATH=tmp, PID_PATH=tmp,
            SKYLINE_TMP_DIR=str(Path(tmp) / "tmp"), ANOMALY_DUMP=str(Path(tmp) / "anomalies.json"),
            GRAPHITE_HOST="", ENABLE_ALERTS=False, ALERT_ON_STALE_METRICS=False, ANALYZER_PROCESSES=processes,
            MAX_ANALYZER_PROCESS_RUNTIME=3600,
        )
        seconds: dict[int, list[float]] = {0: [], base.TUNE_SAMPLE_SIZE: []}
        for run in range(runs):
            size = list(seconds)[run % 2]
            started = time.perf_counter()
            Analyzer(base.replace(TUNE_SAMPLE_SIZE=size)).run_once()
            seconds[size].append(time.perf_counter() - started)
        off, on = (statistics.median(seconds[size]) for size in seconds)
        print(f"\ndaemon runs, {metrics:,} metrics x 1,440 points, {processes} workers, {runs} runs alternating:")
        print(f"  TUNE_SAMPLE_SIZE = 0: median {off:.3f} s   TUNE_SAMPLE_SIZE = {base.TUNE_SAMPLE_SIZE}: "
              f"median {on:.3f} s   ratio {on / off:.3f}")
        conn = redis.Redis(unix_socket_path=socket_path)
        history = tune_history.read_history(conn, base.ALGORITHMS, base.TUNE_HISTORY_RUNS,
                                            base.TUNE_HISTORY_RUNS * processes)
        conn.close()
        print("\n$ skyline-analyzer tune\n" + "\n".join(render(tune_report.build(history, base))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    settings = config.load()
    print(f"recording cost, algorithms only (TUNE_SAMPLE_SIZE = {settings.TUNE_SAMPLE_SIZE}, one worker's run):")
    print(f"{'corpus':<24}{'series':>8}{'plain s':>10}{'tune s':>10}{'ratio':>8}{'observe ms':>11}"
          f"{'µs/ser':>8}{'complete ms':>12}{'overhead':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings.replace(SKYLINE_TMP_DIR=tmp)
        synthetic = [calm_chunk(first, min(CHUNK, args.series - first), 1440, 60, NOW)
                     for first in range(0, args.series, CHUNK)]
        recording_cost("synthetic 60 s", synthetic, settings, tmp)
        for name in ("corpus_60s", "corpus_10s"):
            series, names = vectors(name)
            chunks = [(series[i:i + CHUNK], names[i:i + CHUNK]) for i in range(0, len(series), CHUNK)]
            recording_cost(name, chunks, settings, tmp)
    daemon_runs(args.metrics, args.runs, args.processes)


if __name__ == "__main__":
    main()
