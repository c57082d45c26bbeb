"""Algorithms only: the fast engine against the reference path, milliseconds per series, in the same run.

Corpora: both golden-vector corpora, and 10,000 synthetic series of 1,440 points (60 s, a day) and of
8,640 points (10 s, a day). Synthetic series are built in chunks of 1,000 with numpy (the shapes of
``skyline_analyzer.synthetic``: noisy, seasonal, trend, counter, flat, random walk; 1 % end in a
spike); each chunk is analysed by the fast engine and then, for the first ``--reference-series``
series, by the reference, alternating ``--repeat`` times and keeping each engine's fastest time, so both
see the same machine load. Ratios are of mean ms per series.

Also measured on the 1,440-point corpus, every algorithm run on every series (no early exit): how often
each algorithm votes True, and its cost per series in each engine, for docs/analyzer-optimizations.md;
and how often the exactness fallback handed a vote to the reference detector.

    .venv/bin/python benchmarks/algorithms.py [--series 10000] [--reference-series 2000]
        [--json results.json] [--plot docs/analyzer-optimizations.png]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer import config  # noqa: E402
from skyline_analyzer.allocator import tune_allocator  # noqa: E402
from skyline_analyzer.detection import engine  # noqa: E402
from skyline_analyzer.detection.series import Series  # noqa: E402
from skyline_analyzer.synthetic import KINDS, make_values  # noqa: E402

VECTORS = REPO / "tests" / "data" / "vectors"
NOW = 1_700_000_000
CHUNK = 1000
#: Rows the fast engine left to the reference detector, per algorithm, over every timed fast pass.
DEFERRED: Counter[str] = Counter()


class TimingRecorder:
    """Collects per-algorithm run counts and seconds in memory (the files' content, without the files)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        self.runs[algorithm] += runs
        self.seconds[algorithm] += seconds * runs


def synthetic_chunk(first: int, count: int, points: int, step: int) -> tuple[list[Series], list[str]]:
    """Series ``first .. first+count-1``: deterministic per index, 1 in 100 ending in a spike."""
    series, names = [], []
    offsets = np.arange(points - 1, -1, -1, dtype=np.float64)
    timestamps = NOW - step * offsets
    for n in range(first, first + count):
        kind = KINDS[n % len(KINDS)]
        values = np.round(make_values(kind, points, seed=n, spike=n % 100 == 0), 3)
        series.append(Series(timestamps.copy(), values, int(timestamps[-1]), float(values[-1])))
        names.append(f"metrics.synthetic.{kind}.{n:05d}")
    return series, names


def vectors(name: str) -> tuple[list[Series], list[str]]:
    data = json.loads(gzip.decompress((VECTORS / f"{name}.input.json.gz").read_bytes()))
    names = sorted(data)
    return [Series.from_pairs(data[n], n) for n in names], names


def timed(series: list[Series], names: list[str], settings: config.Settings, recorder: object = None) -> float:
    started = time.perf_counter()
    engine.analyse(series, names, settings, NOW, recorder=recorder, deferred=DEFERRED)
    return time.perf_counter() - started


def compare(
    label: str, chunks: object, fast: config.Settings, reference: config.Settings, ref_limit: int, repeat: int
) -> dict:
    """Mean ms per series of both engines over ``chunks`` (the reference on the first ``ref_limit``).

    Each chunk is timed ``repeat`` times per engine, alternating, and the fastest time kept: on a shared
    machine the minimum is the measurement least disturbed by other work, for both engines alike.
    """
    fast_s = ref_s = 0.0
    fast_n = ref_n = 0
    for series, names in chunks:
        take = min(len(series), max(0, ref_limit - ref_n))
        fast_times, ref_times = [], []
        for _ in range(repeat):
            fast_times.append(timed(series, names, fast))
            if take:
                ref_times.append(timed(series[:take], names[:take], reference))
        fast_s += min(fast_times)
        fast_n += len(series)
        if take:
            ref_s += min(ref_times)
            ref_n += take
    row = {
        "corpus": label,
        "series": fast_n,
        "reference_series": ref_n,
        "fast_ms": 1000 * fast_s / fast_n,
        "reference_ms": 1000 * ref_s / ref_n,
    }
    row["speedup"] = row["reference_ms"] / row["fast_ms"]
    print(f"{label:<28} fast {row['fast_ms']:8.4f} ms/series ({fast_n:>6})   reference {row['reference_ms']:8.4f}"
          f" ms/series ({ref_n:>6})   speed-up {row['speedup']:6.1f}x", flush=True)
    return row


def algorithm_profile(settings: config.Settings, count: int) -> dict:
    """Every algorithm on every 1,440-point series: True rate and cost per series in both engines."""
    every = settings.replace(ENABLE_ALL_ALGORITHMS_RUN_METRICS=True)
    series, names = synthetic_chunk(0, count, 1440, 60)
    recorders = {}
    outcomes = None
    for kind in ("reference", "fast"):
        recorders[kind] = TimingRecorder()
        outcomes = engine.analyse(series, names, every.replace(ANALYZER_ENGINE=kind), NOW, recorder=recorders[kind])
    triggered: Counter[str] = Counter()
    analysed = 0
    for outcome in outcomes:
        if outcome.verdict is not None:
            analysed += 1
            triggered.update(outcome.verdict.triggered(list(settings.ALGORITHMS)))
    votes = [dict(zip(settings.ALGORITHMS, o.verdict.ensemble, strict=True)) for o in outcomes if o.verdict is not None]
    profile = {}
    print(f"\nper algorithm, every algorithm run on {analysed} analysed 1,440-point series:")
    print(f"{'algorithm':<30} {'True %':>7} {'reference us':>13} {'fast us':>9} {'speed-up':>9}")
    for name in settings.ALGORITHMS:
        ref_us = 1e6 * recorders["reference"].seconds[name] / max(recorders["reference"].runs[name], 1)
        fast_us = 1e6 * recorders["fast"].seconds[name] / max(recorders["fast"].runs[name], 1)
        profile[name] = {"true_rate": triggered[name] / analysed, "reference_us": ref_us, "fast_us": fast_us}
        print(f"{name:<30} {100 * triggered[name] / analysed:7.2f} {ref_us:13.1f} {fast_us:9.2f}"
              f" {ref_us / fast_us:8.1f}x")
    return {"algorithms": profile, "orders": order_costs(votes, profile, settings)}


#: v1.2.8's default order and the Etsy original's (docs/analyzer-optimizations.md#the-default-algorithms-order).
ETSY_ORDER = ["first_hour_average", "mean_subtraction_cumulation", "stddev_from_average",
              "stddev_from_moving_average", "least_squares", "grubbs", "histogram_bins",
              "median_absolute_deviation", "ks_test"]


def order_costs(votes: list[dict], profile: dict, settings: config.Settings) -> dict:
    """Expected cost per series of candidate ``ALGORITHMS`` orders under the early exit.

    Replays each series' votes (from the every-algorithm run) in the candidate order, stopping once
    consensus is impossible, and sums the measured mean cost of each algorithm run. Greedy orders put
    first the algorithm with the lowest cost per chance of voting False (an early False is what ends
    the run).
    """
    names = list(settings.ALGORITHMS)
    max_false = len(names) - settings.CONSENSUS + 1
    false_rate = {n: sum(v[n] is False for v in votes) / len(votes) for n in names}
    orders = {"v1.2.8 default": names, "Etsy": ETSY_ORDER}
    for engine_name in ("reference", "fast"):
        key = f"{engine_name}_us"
        orders[f"greedy for {engine_name} costs"] = sorted(
            names, key=lambda n, key=key: profile[n][key] / max(false_rate[n], 1e-9))
    results = {}
    print(f"\nexpected cost per series of an ALGORITHMS order (early exit, {len(votes)} series):")
    for label, order in orders.items():
        row = {"order": order}
        for engine_name in ("reference", "fast"):
            total = 0.0
            for series_votes in votes:
                falses = 0
                for name in order:
                    total += profile[name][f"{engine_name}_us"]
                    falses += series_votes[name] is False
                    if falses >= max_false:
                        break
            row[f"{engine_name}_us"] = total / len(votes)
        results[label] = row
        print(f"  {label:<28} reference {row['reference_us']:8.1f} us   fast {row['fast_us']:7.2f} us   "
              f"{', '.join(order)}")
    return results


def plot(profile: dict, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profile = profile["algorithms"]
    names = list(profile)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(names))
    left.barh(y - 0.2, [profile[n]["reference_us"] for n in names], 0.4, label="reference (per series)")
    left.barh(y + 0.2, [profile[n]["fast_us"] for n in names], 0.4, label="fast (batched)")
    left.set_yticks(y, [f"{n} ({100 * profile[n]['true_rate']:.1f}% True)" for n in names])
    left.invert_yaxis()
    left.set_xscale("log")
    left.set_xlabel("µs per series (log), 1,440 points, every algorithm run")
    left.set_title("Cost of each algorithm")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize="small")
    labels = [r["corpus"] for r in rows]
    x = np.arange(len(rows))
    right.bar(x - 0.2, [r["reference_ms"] for r in rows], 0.4, label="reference")
    right.bar(x + 0.2, [r["fast_ms"] for r in rows], 0.4, label="fast")
    for xi, r in zip(x, rows, strict=True):
        right.annotate(f"{r['speedup']:.1f}x", (xi, r["reference_ms"]), ha="center", va="bottom")
    right.set_xticks(x, labels, rotation=20, ha="right")
    right.set_yscale("log")
    right.set_ylabel("ms per series (log scale)")
    right.set_title("Whole ensemble, default settings")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000, help="synthetic series per length")
    parser.add_argument("--reference-series", type=int, default=2_000,
                        help="synthetic series per length also run through the reference (it is slow)")
    parser.add_argument("--profile-series", type=int, default=1_000, help="series for the per-algorithm table")
    parser.add_argument("--repeat", type=int, default=3, help="timings per chunk and engine; the fastest is kept")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--plot", type=Path, default=None, help="write the PNG plot here")
    args = parser.parse_args()

    tune_allocator()
    settings = config.Settings({})
    fast = settings.replace(ANALYZER_ENGINE="fast")
    reference = settings.replace(ANALYZER_ENGINE="reference")
    corpora = {name: vectors(name) for name in ("corpus_60s", "corpus_10s")}
    with np.errstate(all="ignore"):
        # Warm both paths (lazy imports such as statsmodels', caches) so neither pays a first-call cost
        # inside the timings.
        for series, names in corpora.values():
            timed(series, names, fast)
            timed(series, names, reference)
    DEFERRED.clear()

    rows = []
    for name, (series, names) in corpora.items():
        rows.append(compare(f"vectors {name}", [(series, names)], fast, reference, len(series), args.repeat))
    for points, step in ((1440, 60), (8640, 10)):
        chunks = (synthetic_chunk(first, min(CHUNK, args.series - first), points, step)
                  for first in range(0, args.series, CHUNK))
        rows.append(compare(f"synthetic {points} points", chunks, fast, reference, args.reference_series,
                            args.repeat))
    # Every chunk was analysed `repeat` times by the fast engine, identically: count one pass.
    deferred = {name: count // args.repeat for name, count in DEFERRED.items()}
    print(f"\nexactness fallback (votes taken from the reference detector), one pass over the corpora: {deferred}")
    profile = algorithm_profile(settings, args.profile_series)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "profile": profile, "deferred": deferred}, indent=1))
    if args.plot:
        plot(profile, rows, args.plot)


if __name__ == "__main__":
    main()
