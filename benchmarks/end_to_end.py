"""End to end: one real Analyzer run over 100,000 metrics of 1,440 points, against a lean MGET + decode loop.

The script seeds a private redis-server (60 s data ending now, the shapes of ``benchmarks/algorithms.py``,
1 % ending in a spike), then alternates, ``--repeat`` times, in fresh processes:

* ``lean``: the floor. One plain loop: SMEMBERS, MGET in chunks of ``worker.MGET_CHUNK`` keys, and each
  value read into two float64 arrays with one structured ``np.frombuffer`` (the seeded record layout is
  known: no checks at all), with the same allocator tuning as a worker. No engine can go below this;
* ``lean-reader``: the same loop with the MGETs read by the worker's own
  :class:`skyline_analyzer.bulk_reader.BulkReader` instead of redis-py: the daemon reads through it, so
  each daemon run is also compared with this floor (the ratio in brackets);
* ``daemon``: :meth:`skyline_analyzer.analyzer.daemon.Analyzer.run_once` with the default settings (fast
  engine, alerts off) and ``ANALYZER_PROCESSES`` workers. The process runs twice and the second run is the
  one compared (the daemon runs forever: its first run also pays one-off imports, printed apart);
* ``reference``: the same with ``ANALYZER_ENGINE = 'reference'``, only for counts up to
  ``--reference-up-to`` (it is slow);
* with ``--second-stage``, ``stage`` and ``stage-flags``: the fast daemon with ``SECOND_STAGE_ENABLED``,
  candidates at the configured ``SECOND_STAGE_MIN_VOTES`` (default 1) and at ``CONSENSUS`` (only the
  flags re-checked). Every metric's shape is then generated over eight days: the last day is the series,
  and the last seven days, averaged into the default 600 s buckets up to the last complete one, are its
  copy (``second_stage.<key>``), as Horizon's keeper would have written it.

It prints, per configuration, the median seconds and its spread, metrics per second, each daemon run's
ratio to the lean loop of the same repetition (median and range), and every process's own peak memory:
the kernel's VmHWM, reset at the start of the process (``/proc/self/clear_refs``), read by the process
itself at its end (a forked worker would otherwise report the peak of the process it was forked from).
Nothing is asserted.

    .venv/bin/python benchmarks/end_to_end.py [--counts 100000] [--points 1440] [--processes 1 2]
                                              [--repeat 3] [--second-stage] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from corpora import calm_chunk  # noqa: E402

from skyline_analyzer import config, keys  # noqa: E402
from skyline_analyzer.allocator import tune_allocator  # noqa: E402
from skyline_analyzer.analyzer import worker  # noqa: E402
from skyline_analyzer.analyzer.daemon import Analyzer  # noqa: E402
from skyline_analyzer.bulk_reader import BulkReader  # noqa: E402
from skyline_analyzer.defaults import DEFAULTS  # noqa: E402
from skyline_analyzer.detection import second_stage  # noqa: E402
from skyline_analyzer.harness import private_redis  # noqa: E402

STEP = 60
#: Horizon's usual record: fixarray(2), uint32 timestamp, float64 value.
RECORD = np.dtype([("array", "u1"), ("ts_type", "u1"), ("ts", ">u4"), ("value_type", "u1"), ("value", ">f8")])


def encode_block(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    """One series as repeated APPENDs of ``packb((int ts, float value))`` leave it, built with numpy."""
    records = np.empty(timestamps.shape[0], dtype=RECORD)
    records["array"], records["ts_type"], records["value_type"] = 0x92, 0xCE, 0xCB
    records["ts"] = timestamps.astype(np.uint32)
    records["value"] = values
    return records.tobytes()


#: The second stage's copies as the benchmark seeds them: the default buckets, over this many days.
COPY_RESOLUTION, COPY_DAYS = DEFAULTS["SECOND_STAGE_RESOLUTION"], 7
DAY = 86400


def copy_of(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    """The keeper's copy of a series generated over eight days: its last seven days in complete buckets."""
    window = timestamps > timestamps[-1] - COPY_DAYS * DAY
    starts, means = second_stage.downsample(timestamps[window], values[window], COPY_RESOLUTION)
    return encode_block(starts, means)


def seed(socket_path: str, count: int, points: int, now: int, namespace: str, copies: bool = False) -> None:
    conn = redis.Redis(unix_socket_path=socket_path)
    conn.flushall()
    # With copies, each shape runs over the copy's days before the series' own day, so that the copy holds
    # the series' real past (a copy made by repeating the last day would jump, at the current time of day,
    # from the end of the day back to its start: a false residual on every trend and random walk).
    generated = points + (COPY_DAYS * DAY // STEP if copies else 0)
    for first in range(0, count, 1000):
        series, names = calm_chunk(first, min(1000, count - first), generated, STEP, 1_700_000_000)
        pipe = conn.pipeline(transaction=False)
        shift = now - 1_700_000_000  # calm_chunk ends at 1.7e9 here; move the grid to end at `now`
        full_keys = [keys.metric(namespace, name.removeprefix("metrics.")) for name in names]
        for full_key, one in zip(full_keys, series, strict=True):
            timestamps = one.timestamps + shift
            pipe.set(full_key, encode_block(timestamps[-points:], one.values[-points:]))
            if copies:
                pipe.set(keys.second_stage_history(full_key), copy_of(timestamps, one.values))
        pipe.sadd(keys.unique_metrics(namespace), *full_keys)
        pipe.execute()
    conn.close()


# --- peak memory of one process, measured by itself ---------------------------------------------

def reset_peak() -> None:
    """Make VmHWM the current RSS (Linux ``clear_refs`` 5), so the peak read later is this process's own."""
    Path("/proc/self/clear_refs").write_text("5")


def own_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _measured_worker(peaks_dir: Path) -> Callable[..., None]:
    """``worker.spin_process`` that records its own peak memory in ``peaks_dir``."""
    spin_process = worker.spin_process

    def measured(i: int, *args: object) -> None:
        reset_peak()
        try:
            spin_process(i, *args)
        finally:
            (peaks_dir / f"worker-{i}").write_text(str(own_peak_mib()))

    return measured


# --- the runs, each in a fresh process ------------------------------------------------------------

def lean_run(socket_path: str, through_reader: bool = False) -> dict:
    """The floor: SMEMBERS, chunked MGETs, one structured frombuffer per value, nothing else.

    The MGETs go through redis-py (as the issue defined the floor), or, ``through_reader``, through the
    worker's own :class:`BulkReader`, so that the gain of the reader is not counted as the daemon's.
    """
    reset_peak()
    tune_allocator()
    settings = config.load().replace(REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None)
    conn = redis.Redis(unix_socket_path=socket_path)
    # Made only when used: its buffers would otherwise count in the redis-py floor's peak memory.
    reader = BulkReader(settings) if through_reader else None
    mget = conn.mget if reader is None else reader.mget
    started = time.perf_counter()
    names = [name.decode() for name in conn.smembers(keys.unique_metrics(settings.FULL_NAMESPACE))]
    fetching = decoding = 0.0
    for lo in range(0, len(names), worker.MGET_CHUNK):
        fetched = time.perf_counter()
        raws = mget(names[lo : lo + worker.MGET_CHUNK])
        decoded = time.perf_counter()
        for raw in raws:
            records = np.frombuffer(raw, dtype=RECORD)
            _ = records["ts"].astype(np.float64), records["value"].astype(np.float64)
        fetching += decoded - fetched
        decoding += time.perf_counter() - decoded
    if reader is not None:
        reader.close()
    return {"seconds": time.perf_counter() - started, "metrics": len(names), "mget_seconds": fetching,
            "decode_seconds": decoding, "parent_mib": own_peak_mib(), "worker_mib": 0.0}


#: The floors: MGETs through redis-py, and through the worker's reader.
LEAN_MODES = ("lean", "lean-reader")
#: Second-stage modes: ``SECOND_STAGE_MIN_VOTES`` as configured (default 1), or ``CONSENSUS`` (the flags only).
STAGE_MODES = ("stage", "stage-flags")


def daemon_run(socket_path: str, tmp: str, mode: str, processes: int, now: int) -> dict:
    """Two runs of one Analyzer (the second is the steady state); each process's own peak memory."""
    root = Path(tmp)
    engine = "fast" if mode in STAGE_MODES else mode
    settings = config.load()
    stage = {}
    if mode in STAGE_MODES:
        stage = {"SECOND_STAGE_ENABLED": True, "SECOND_STAGE_MIN_VOTES": (
            settings.CONSENSUS if mode == "stage-flags" else settings.SECOND_STAGE_MIN_VOTES)}
    settings = settings.replace(
        REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None, LOG_PATH=tmp, PID_PATH=tmp,
        SKYLINE_TMP_DIR=str(root / f"tmp-{mode}-{processes}"), ANOMALY_DUMP=str(root / "anomalies.json"),
        GRAPHITE_HOST="", ENABLE_ALERTS=False, ANALYZER_PROCESSES=processes, MAX_ANALYZER_PROCESS_RUNTIME=3600,
        ANALYZER_ENGINE=engine, **stage,
    )
    peaks = Path(tempfile.mkdtemp(dir=tmp, prefix="peaks-"))
    worker.spin_process = _measured_worker(peaks)
    analyzer = Analyzer(settings)
    started = time.perf_counter()
    analyzer.run_once(float(now))
    first = time.perf_counter() - started
    reset_peak()
    started = time.perf_counter()
    report = analyzer.run_once(float(now))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "first_run_seconds": first, "metrics": report.total_metrics,
            "anomalies": report.total_anomalies, "parent_mib": own_peak_mib(),
            "worker_mib": max(float(path.read_text()) for path in peaks.iterdir())}


def in_fresh_process(*args: str) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True,
                               check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _against_fast(runs: dict[tuple[str, int], list[dict]], mode: str, processes: int) -> str:
    """A second-stage run's seconds over the plain fast daemon's, repetition by repetition (median, range)."""
    if mode not in STAGE_MODES:
        return ""
    ratios = [s["seconds"] / f["seconds"] for s, f in zip(runs[mode, processes], runs["fast", processes], strict=True)]
    return f"  x{spread(ratios).strip()} the fast daemon"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100_000])
    parser.add_argument("--points", type=int, default=1440)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reference-up-to", type=int, default=10_000,
                        help="also time the reference engine for counts up to this")
    parser.add_argument("--repeat", type=int, default=3, help="alternations of the floor and each daemon run")
    parser.add_argument("--second-stage", action="store_true",
                        help="also time the fast daemon with the second stage on (candidates at "
                             "SECOND_STAGE_MIN_VOTES, and at CONSENSUS)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mode, socket_path, *rest = args.one
        if mode in LEAN_MODES:
            result = lean_run(socket_path, through_reader=mode == "lean-reader")
        else:
            tmp, processes, now = rest
            result = daemon_run(socket_path, tmp, mode, int(processes), int(now))
        print(json.dumps(result))
        return

    namespace = config.load().FULL_NAMESPACE
    rows = []
    with tempfile.TemporaryDirectory(prefix="skyline-e2e-") as tmp, private_redis(Path(tmp)) as socket_path:
        for count in args.counts:
            now = int(time.time())
            started = time.perf_counter()
            seed(socket_path, count, args.points, now, namespace, copies=args.second_stage)
            info = redis.Redis(unix_socket_path=socket_path).info("memory")
            print(f"\n{count} metrics x {args.points} points seeded in {time.perf_counter() - started:.1f} s"
                  f" (redis used_memory {info['used_memory'] / 2**20:.0f} MiB); median (min-max) of"
                  f" {args.repeat} alternations", flush=True)
            engines = (["fast"] + (["reference"] if count <= args.reference_up_to else [])
                       + (list(STAGE_MODES) if args.second_stage else []))
            configs = [(engine, processes) for processes in args.processes for engine in engines]
            leans = [(mode, 0) for mode in LEAN_MODES]
            runs: dict[tuple[str, int], list[dict]] = {key: [] for key in [*leans, *configs]}
            for _ in range(args.repeat):
                for mode, _none in leans:
                    runs[mode, 0].append(in_fresh_process(mode, socket_path))
                for engine, processes in configs:
                    run = in_fresh_process(engine, socket_path, tmp, str(processes), str(now))
                    run["ratio"] = run["seconds"] / runs["lean", 0][-1]["seconds"]
                    run["reader_ratio"] = run["seconds"] / runs["lean-reader", 0][-1]["seconds"]
                    runs[engine, processes].append(run)
            for mode, label in zip(LEAN_MODES, ("lean loop", "lean loop, reader"), strict=True):
                lean_runs = runs[mode, 0]
                print(f"{label:<22} {spread([r['seconds'] for r in lean_runs])} s"
                      f"  (MGET {statistics.median(r['mget_seconds'] for r in lean_runs):.2f} s,"
                      f" decode {statistics.median(r['decode_seconds'] for r in lean_runs):.2f} s)"
                      f"  {count / statistics.median(r['seconds'] for r in lean_runs):>8.0f} metrics/s"
                      f"  peak {max(r['parent_mib'] for r in lean_runs):5.0f} MiB", flush=True)
            for engine, processes in configs:
                done = runs[engine, processes]
                seconds = [r["seconds"] for r in done]
                print(f"{engine + ' daemon, ' + str(processes) + ' proc':<22} {spread(seconds)} s"
                      f"  x{spread([r['ratio'] for r in done]).strip()} the lean loop"
                      f" (x{spread([r['reader_ratio'] for r in done]).strip()} the reader's)"
                      f"  {count / statistics.median(seconds):>8.0f} metrics/s"
                      f"  first run {statistics.median(r['first_run_seconds'] for r in done):.2f} s"
                      f"  peak parent {max(r['parent_mib'] for r in done):4.0f} MiB,"
                      f" worker {max(r['worker_mib'] for r in done):4.0f} MiB"
                      f"  anomalies {done[0]['anomalies']}" + _against_fast(runs, engine, processes), flush=True)
            rows.append({"count": count, "points": args.points,
                         "runs": {f"{mode}-{processes}": done for (mode, processes), done in runs.items()}})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
