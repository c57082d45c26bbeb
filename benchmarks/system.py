"""Whole-system benchmark: Horizon, Roomba and the Analyzer together on one machine, minute after minute.

For each scale (a number of metrics) it starts a private redis-server, seeds it with a backfill of every
metric, starts the real daemons as child processes (``skyline-analyzer horizon``: listeners, workers and
Roomba; ``skyline-analyzer run``: the Analyzer with ``ANALYZER_OPTIMUM_RUN_DURATION = 60``) with a settings
file in a temporary directory, and a relay-like sender process that, every minute for ``--minutes``
minutes, sends one datapoint per metric (stamped with the minute) over one carbon pickle connection in
frames of 500, spread over the first 57 s of the minute.

**The backfill does not go through Horizon.** ``FULL_DURATION + ROOMBA_GRACE_TIME`` of 60 s data for
250,000 metrics is 362 million datapoints, hours through one pickle listener; it is written straight into
Redis, pipelined, as the exact bytes Horizon's APPENDs leave (checked against ``codec.encode`` at start),
with the key added to ``metrics.unique_metrics``. From then on every datapoint goes through Horizon, and
the window is full: each pass Roomba drops about one datapoint per key, as in steady state.

Per minute it prints the Analyzer run and Roomba pass times (from their logs), the ingest lag (sampled:
20 datapoints a minute, from the sender's ``sendall`` to the datapoint's presence at the end of its key),
the datapoints offered, stored and lost (counted exactly over every key once the last minute has
settled: a datapoint sent and absent from Redis is lost, whatever lost it), CPU seconds and PSS per
component (process trees from /proc; ``bench`` is this script, probes included) and Redis's own memory,
and the 1-minute load average (the machine may be shared). Then a verdict per scale: did every Analyzer
run and every Roomba pass fit in its minute, with nothing lost? Nothing is asserted.

    .venv/bin/python benchmarks/system.py --scales 10000 --minutes 3        # a quick look
    .venv/bin/python benchmarks/system.py                                 # 10k, 50k, 100k, 250k for 10 min
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import queue
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import system_measure as measure  # noqa: E402

from skyline_analyzer import codec, config, keys  # noqa: E402
from skyline_analyzer.harness import free_ports, private_redis, stop, write_settings  # noqa: E402
from skyline_analyzer.horizon.senders import FRAME_DATAPOINTS, pickle_frame  # noqa: E402

STEP = 60
#: Fraction of each minute the sender spreads the minute's datapoints over.
SPREAD = 0.95
PROBES_PER_MINUTE = 20
SAMPLE_SECONDS = 2.0
#: Seconds before the first live minute at which the sender connects to Horizon.
CONNECT_AHEAD = 5.0
SEED_CHUNK = 1000
COMPONENTS = ("horizon", "roomba", "analyzer", "redis", "sender", "bench")
#: The components of the system itself: not this script's probes and sampling.
SYSTEM = COMPONENTS[:5]


def metric_name(n: int) -> str:
    return f"system.host{n // 100:04d}.metric{n % 100:02d}"


def make_values(indices: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values for metrics ``indices`` at minute ``steps``: five shapes (noisy, seasonal, trend, counter, flat)."""
    kind = (indices % 5)[:, None]
    base = np.choose(kind, [100.0, 500.0, 50.0, 1000.0, 42.0])
    sd = np.choose(kind, [5.0, 10.0, 2.0, 30.0, 0.0])
    season = np.where(kind == 1, 200.0, 0.0) * np.sin(2 * np.pi * steps / 1440)[None, :]
    trend = np.where(kind == 2, 0.05, 0.0) * steps[None, :]
    values = base + season + trend + sd * rng.normal(size=(len(indices), len(steps)))
    return np.where(kind == 3, np.round(values), np.round(values, 3))


def seed(conn: redis.Redis, count: int, stamps: np.ndarray, namespace: str) -> None:
    """The backfill: every metric's ``stamps``, written as Horizon's APPENDs would leave them."""
    rng = np.random.default_rng(1)
    steps = (stamps - stamps[0]) // STEP
    sample = make_values(np.arange(2), steps[:3], rng)
    block = measure.encode_block(stamps[:3], sample)
    if block[0].tobytes() != codec.encode(zip(stamps[:3].tolist(), sample[0].tolist(), strict=True)):
        raise RuntimeError("the seeded bytes differ from what Horizon writes")
    unique = keys.unique_metrics(namespace)
    for start in range(0, count, SEED_CHUNK):
        indices = np.arange(start, min(count, start + SEED_CHUNK))
        rows = measure.encode_block(stamps, make_values(indices, steps, rng))
        pipe = conn.pipeline(transaction=False)
        names = [keys.metric(namespace, metric_name(int(i))) for i in indices]
        for name, row in zip(names, rows, strict=True):
            pipe.set(name, row.tobytes())
        pipe.sadd(unique, *names)
        pipe.execute()


def send(address: tuple[str, int], count: int, first_live: int, minutes: int, first_stamp: int,
         namespace: str, probes: multiprocessing.Queue, offered: multiprocessing.Array) -> None:
    """The relay: each minute, one datapoint per metric over one pickle connection, spread over the minute."""
    names = [metric_name(n) for n in range(count)]
    indices = np.arange(count)
    rng = np.random.default_rng(2)
    frames = math.ceil(count / FRAME_DATAPOINTS)
    probe_every = max(1, frames // PROBES_PER_MINUTE)
    # Connect just before the first frame: Horizon closes a connection idle for HORIZON_IDLE_TIMEOUT
    # (300 s), and the wait for the first live minute after a large seeding can be longer than that.
    time.sleep(max(0.0, first_live - CONNECT_AHEAD - time.time()))
    with socket.create_connection(address, timeout=60) as sock:
        for minute in range(minutes):
            stamp = first_live + STEP * minute
            values = make_values(indices, np.array([(stamp - first_stamp) // STEP]), rng)[:, 0].tolist()
            for frame in range(frames):
                ahead = stamp + SPREAD * STEP * frame / frames - time.time()
                if ahead > 0:
                    time.sleep(ahead)
                lo = frame * FRAME_DATAPOINTS
                batch = [(names[n], (stamp, values[n])) for n in range(lo, min(count, lo + FRAME_DATAPOINTS))]
                sock.sendall(pickle_frame(batch))
                offered[minute] += len(batch)
                if frame % probe_every == 0:
                    probes.put((keys.metric(namespace, batch[0][0]), stamp, time.time()))


@dataclass
class Probes:
    """Ingest lag: when each probed datapoint was sent, and how long until Redis held it at its key's end."""

    queue: multiprocessing.Queue
    pending: list[tuple[str, int, float]] = field(default_factory=list)
    done: list[tuple[float, float]] = field(default_factory=list)

    def poll(self, conn: redis.Redis) -> None:
        while True:
            try:
                self.pending.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not self.pending:
            return
        pipe = conn.pipeline(transaction=False)
        for key, _, _ in self.pending:
            pipe.getrange(key, -2 * measure.RECORD.itemsize, -1)
        now = time.time()
        still = []
        for (key, stamp, sent), tail in zip(self.pending, pipe.execute(), strict=True):
            if struct.pack(">I", stamp) in tail:
                self.done.append((sent, now - sent))
            else:
                still.append((key, stamp, sent))
        self.pending = still


class Sampler(threading.Thread):
    """Every :data:`SAMPLE_SECONDS`: CPU seconds and PSS per component, Redis memory, the load average."""

    def __init__(self, components: measure.Components, socket_path: str) -> None:
        super().__init__(daemon=True)
        self.components = components
        self.conn = redis.Redis(unix_socket_path=socket_path)
        self.samples: list[tuple[float, dict[str, float], dict[str, float], float, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            cpu, pss, pass_age = self.components.sample()
            memory = self.conn.info("memory")
            self.samples.append((time.time(), cpu, pss, memory["used_memory"] / 2**20, os.getloadavg()[0],
                                 pass_age))
            self.stop.wait(SAMPLE_SECONDS)


def start_daemon(command: str, settings_file: Path, out: Path) -> subprocess.Popen:
    with out.open("wb") as handle:
        return subprocess.Popen([sys.executable, "-m", "skyline_analyzer", command], cwd=REPO, stdout=handle,
                                stderr=subprocess.STDOUT, env={**os.environ, "SKYLINE_SETTINGS": str(settings_file)})


def wait_for_horizon(process: subprocess.Popen, log: Path, workers: int) -> set[int]:
    deadline = time.monotonic() + 120
    while len(pids := measure.ingest_pids(log)) < workers + 3:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"horizon did not start:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.2)
    return pids


def memory_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_scale(count: int, args: argparse.Namespace) -> dict:
    """One scale from seeding to the exact count; returns what the tables and the verdict need."""
    with tempfile.TemporaryDirectory(prefix=f"skyline-system-{count}-") as tmp, private_redis(Path(tmp)) as sock:
        root = Path(tmp)
        for name in ("log", "tmp"):
            (root / name).mkdir()
        ports = free_ports()
        settings_file = write_settings(root / "settings.py", REPO / "settings.py", {
            "REDIS_SOCKET_PATH": sock, "REDIS_HOST": None, "REDIS_PASSWORD": None, "LOG_PATH": str(root / "log"),
            "PID_PATH": str(root / "log"), "SKYLINE_TMP_DIR": str(root / "tmp"),
            "ANOMALY_DUMP": str(root / "anomalies.json"), "GRAPHITE_HOST": "", "HORIZON_IP": "127.0.0.1",
            "ENABLE_ALERTS": False, "ALERT_ON_STALE_METRICS": False, "ENABLE_MIRAGE": False,
            "ANALYZER_PROCESSES": args.analyzer_processes, "ANALYZER_OPTIMUM_RUN_DURATION": STEP,
            "WORKER_PROCESSES": args.workers, "ROOMBA_PROCESSES": args.roomba_processes,
            "ROOMBA_TIMEOUT": args.roomba_timeout, **ports,
        })
        settings = config.load(settings_file)
        window = settings.FULL_DURATION + settings.ROOMBA_GRACE_TIME
        conn = redis.Redis(unix_socket_path=sock)
        # Seeding runs at about 2.5 million datapoints a second here; the live minutes follow the backfill.
        planned = math.ceil((time.time() + 40 + count * window / STEP / 1.5e6) / STEP) * STEP
        backfill = planned - STEP * np.arange(window // STEP, 0, -1, dtype=np.int64)
        started = time.monotonic()
        seed(conn, count, backfill, settings.FULL_NAMESPACE)
        seeded = time.monotonic() - started
        # Should seeding overrun, the live minutes start later and the series have a gap before them.
        first_live = max(planned, math.ceil((time.time() + 20) / STEP) * STEP)
        print(f"seeded {count:,} x {len(backfill):,} datapoints in {seeded:.1f} s straight into Redis "
              f"({count * len(backfill) / seeded:,.0f}/s); used_memory "
              f"{conn.info('memory')['used_memory'] / 2**20:,.0f} MiB", flush=True)
        horizon_log, analyzer_log = root / "log" / "horizon.log", root / "log" / "analyzer.log"
        horizon = start_daemon("horizon", settings_file, root / "horizon.out")
        analyzer = None
        sender = None
        sampler = None
        try:
            ingest = wait_for_horizon(horizon, horizon_log, args.workers)
            analyzer = start_daemon("run", settings_file, root / "analyzer.out")
            probes = Probes(multiprocessing.Queue())
            offered = multiprocessing.Array("q", args.minutes)
            sender = multiprocessing.get_context("fork").Process(
                target=send, args=(("127.0.0.1", ports["PICKLE_PORT"]), count, first_live, args.minutes,
                                   int(backfill[0]), settings.FULL_NAMESPACE, probes.queue, offered))
            sender.start()
            sampler = Sampler(measure.Components(conn.info("server")["process_id"], horizon.pid, analyzer.pid,
                                                 sender.pid, ingest), sock)
            sampler.start()
            end = first_live + STEP * args.minutes
            gap = f" after a {(first_live - planned) // STEP} min gap (seeding overran)" if first_live > planned else ""
            print(f"live from {time.strftime('%H:%M:%S', time.localtime(first_live))} for {args.minutes} min{gap}",
                  flush=True)
            while time.time() < end + 30 and (time.time() < end + 2 or probes.pending):
                probes.poll(conn)
                if horizon.poll() is not None or analyzer.poll() is not None:
                    raise RuntimeError("a daemon exited early; see " + str(root))
                time.sleep(0.05)
            sampler.stop.set()
            sampler.join()
            checked_at = time.time()
            started = time.monotonic()
            names = [keys.metric(settings.FULL_NAMESPACE, metric_name(n)) for n in range(count)]
            live = first_live + STEP * np.arange(args.minutes, dtype=np.int64)
            kept = backfill[backfill > checked_at - settings.FULL_DURATION]
            held = measure.count_holdings(conn, names, live, kept, STEP)
            print(f"counted every key in {time.monotonic() - started:.1f} s", flush=True)
        finally:
            if sampler is not None:
                sampler.stop.set()
            if sender is not None:
                sender.join(timeout=5)
                if sender.is_alive():
                    sender.kill()
            if analyzer is not None:
                stop(analyzer, 60)
            stop(horizon, 60)
        return {
            "count": count, "first_live": first_live, "offered": list(offered), "held": held,
            "runs": measure.analyzer_runs(analyzer_log),
            "passes": measure.roomba_passes(horizon_log, settings.ROOMBA_TIMEOUT),
            "lags": probes.done, "lost_probes": len(probes.pending), "samples": sampler.samples,
            "counters": measure.horizon_counters(horizon_log), "seeded": seeded, "points": len(backfill),
        }


def in_minute(stamp: float, start: float) -> bool:
    return start <= stamp < start + STEP


def nearest(samples: list, stamp: float) -> tuple:
    return min(samples, key=lambda s: abs(s[0] - stamp))


def report(result: dict, minutes: int) -> bool:
    """Print the two per-minute tables and the verdict; True when the scale passes."""
    held, samples = result["held"], result["samples"]
    print(f"\n{result['count']:,} metrics x {result['points']:,} points at {STEP} s, {minutes} min")
    print(f"{'min':>3} {'runs s':>12} {'passes s':>12} {'lag med':>7} {'lag max':>7} {'offered':>9} "
          f"{'stored':>9} {'lost':>6}  {'load':>5}")
    for minute in range(minutes):
        start = result["first_live"] + STEP * minute
        runs = [r.seconds for r in result["runs"] if in_minute(r.end, start)]
        passes = [p.seconds for p in result["passes"] if in_minute(p.end, start)]
        lags = [lag for sent, lag in result["lags"] if in_minute(sent, start)]
        offered, stored = result["offered"][minute], int(held.live_found[minute])
        load, age = nearest(samples, start + STEP)[4:6]
        # No pass ended in this minute: how long the one under way has been running.
        shown = ",".join(f"{p:.1f}" for p in passes) or (f"({age:.0f} on)" if age else "-")
        print(f"{minute + 1:>3} {','.join(f'{r:.1f}' for r in runs) or '-':>12} {shown:>12} "
              f"{statistics.median(lags) if lags else float('nan'):>7.2f} {max(lags, default=float('nan')):>7.2f} "
              f"{offered:>9,} {stored:>9,} {offered - stored:>6,}  {load:>5.2f}")
    print(f"\n{'min':>3} " + " ".join(f"{c + ' cpu':>12}" for c in COMPONENTS) + " "
          + f"{'system cpu':>11} {'of cores':>8} " + " ".join(f"{c[:5] + ' MiB':>10}" for c in COMPONENTS[:4])
          + f" {'redis used':>10}")
    for minute in range(minutes):
        start = result["first_live"] + STEP * minute
        first, last = nearest(samples, start), nearest(samples, start + STEP)
        inside = [s for s in samples if in_minute(s[0], start)] or [last]
        used = {c: last[1][c] - first[1][c] for c in COMPONENTS}
        system = sum(used[c] for c in SYSTEM)
        print(f"{minute + 1:>3} " + " ".join(f"{used[c]:>12.1f}" for c in COMPONENTS)
              + f"{system:>11.1f} {system / (STEP * os.cpu_count()):>8.0%} "
              + " ".join(f"{max(s[2][c] for s in inside):>10,.0f}" for c in COMPONENTS[:4])
              + f" {max(s[3] for s in inside):>10,.0f}")
    window_start = result["first_live"]
    window_end = window_start + STEP * minutes
    runs = [r for r in result["runs"] if window_start <= r.end < window_end]
    passes = [p for p in result["passes"] if window_start <= p.end < window_end]
    lost = sum(result["offered"]) - int(held.live_found.sum())
    counters = result["counters"]
    runs_ok = len(runs) >= minutes - 1 and all(r.seconds < STEP and r.detail in ("", "unprocessed 0") for r in runs)
    running = samples[-1][5]
    passes_ok = (len(passes) >= minutes - 1 and running < STEP
                 and all(p.seconds < STEP and not p.killed for p in passes))
    nothing_lost = lost == 0 and held.backfill_missing == 0 and held.missing_keys == 0
    print(f"\nAnalyzer runs ended in the window: {len(runs)}, longest "
          f"{max((r.seconds for r in runs), default=0):.1f} s; "
          f"Roomba passes: {len(passes)}, longest {max((p.seconds for p in passes), default=0):.1f} s"
          f"{' (killed at ROOMBA_TIMEOUT)' if any(p.killed for p in passes) else ''}"
          f"{f'; a pass still running after {running:.0f} s' if running else ''}")
    print(f"live datapoints offered {sum(result['offered']):,}, stored {int(held.live_found.sum()):,}, lost {lost:,}; "
          f"backfill still expected {held.backfill_expected:,}, missing {held.backfill_missing:,}; keys missing "
          f"{held.missing_keys}, in another format {held.other_format}, duplicate timestamps {held.duplicates:,}; "
          f"lag probes never seen {result['lost_probes']}")
    print("Horizon counters: " + ", ".join(f"{name} {counters.get(name, 0):,.0f}" for name in (
        "listen.pickle_datapoints_received", "listen.pickle_chunks_dropped", "worker.datapoints_written",
        "worker.datapoints_too_old", "worker.datapoints_failed")))
    verdict = runs_ok and passes_ok and nothing_lost
    print(f"verdict {result['count']:,}: {'PASS' if verdict else 'FAIL'} (every run under {STEP} s: "
          f"{'yes' if runs_ok else 'no'}; every pass under {STEP} s: {'yes' if passes_ok else 'no'}; "
          f"nothing lost: {'yes' if nothing_lost else 'no'})", flush=True)
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10000,50000,100000,250000", help="metric counts, comma-separated")
    parser.add_argument("--minutes", type=int, default=10, help="live minutes per scale (default 10)")
    parser.add_argument("--analyzer-processes", type=int, default=2, help="ANALYZER_PROCESSES (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Horizon's WORKER_PROCESSES (default 2)")
    parser.add_argument("--roomba-processes", type=int, default=1, help="ROOMBA_PROCESSES (default 1)")
    parser.add_argument("--roomba-timeout", type=int, default=3600,
                        help="ROOMBA_TIMEOUT (default 3600, so that a long pass is measured, not killed at 100 s)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {memory_available_mib():,.0f} MiB available, load {os.getloadavg()}")
    verdicts = {}
    for count in (int(scale) for scale in args.scales.split(",")):
        # Roomba's rewrite and the next APPEND (which doubles a string's allocation) can hold ~2x the bytes.
        need = count * 1450 * measure.RECORD.itemsize * 2.2 / 2**20
        if need > 0.85 * memory_available_mib():
            print(f"\nskipping {count:,}: Redis may need ~{need:,.0f} MiB, {memory_available_mib():,.0f} available")
            continue
        verdicts[count] = report(run_scale(count, args), args.minutes)
    print("\nverdicts: " + ", ".join(f"{count:,} {'PASS' if ok else 'FAIL'}" for count, ok in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
