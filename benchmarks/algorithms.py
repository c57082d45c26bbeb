"""Algorithms only: the fast engine against the reference engine, milliseconds per series, in the same run.

Corpora: both golden-vector corpora (each timed ``--repeat`` times), and synthetic series of 1,440 points
(60 s, a day) and of 8,640 points (10 s, a day) from ``benchmarks/corpora.py``: the *calm* corpus (the
shapes of ``skyline_analyzer.synthetic``, 1 % ending in a spike) and the *varied* corpus (the categories
of the golden vectors in their proportions, ~8 % anomalous, filtered series included).

Every series is timed by both engines: each chunk of ``--chunk`` series is analysed by one engine and
then the other, the engine going first alternating from chunk to chunk, and before every timed pass a
64 MiB scratch buffer is written so that both engines start with the same (cold) cache. Printed per
corpus: the median over chunks of each engine's ms per series, the ratio of the totals, and the median
and range of the per-chunk ratios. The engines' outcomes are compared on every series.

Also measured on the calm 1,440-point corpus, every algorithm run on every series (no early exit): how
often each algorithm votes True, and its cost per series in each engine, for
docs/analyzer-optimizations.md; and how often the exactness fallback handed a vote to the reference.

    .venv/bin/python benchmarks/algorithms.py [--series 4000] [--series-10s 2000] [--chunk 500]
        [--json results.json] [--plot docs/analyzer-optimizations.png]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.corpora import calm_chunk, varied_chunk  # noqa: E402
from skyline_analyzer import config  # noqa: E402
from skyline_analyzer.allocator import tune_allocator  # noqa: E402
from skyline_analyzer.detection import engine  # noqa: E402
from skyline_analyzer.detection.series import Series  # noqa: E402

VECTORS = REPO / "tests" / "data" / "vectors"
NOW = 1_700_000_000
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


def vectors(name: str) -> tuple[list[Series], list[str]]:
    data = json.loads(gzip.decompress((VECTORS / f"{name}.input.json.gz").read_bytes()))
    names = sorted(data)
    return [Series.from_pairs(data[n], n) for n in names], names


#: Written before every timed pass, so that each engine starts from the same cache state.
_SCRATCH = np.zeros(8 << 20)


def timed(series: list[Series], names: list[str], settings: config.Settings, recorder: object = None,
          deferred: Counter[str] | None = None) -> tuple[float, list]:
    _SCRATCH.fill(1.0)
    started = time.perf_counter()
    outcomes = engine.analyse(series, names, settings, NOW, recorder=recorder, deferred=deferred)
    return time.perf_counter() - started, outcomes


def compare(label: str, chunks: Iterable[tuple[list[Series], list[str]]], fast: config.Settings,
            reference: config.Settings) -> dict:
    """Both engines on every series of every chunk, alternating which goes first; per-chunk figures."""
    fast_ms, ref_ms = [], []
    fast_s = ref_s = 0.0
    count = anomalous = filtered = mismatches = 0
    for index, (series, names) in enumerate(chunks):
        engines = [("fast", fast), ("reference", reference)]
        results = {}
        for kind, settings in engines if index % 2 == 0 else engines[::-1]:
            results[kind] = timed(series, names, settings, deferred=DEFERRED if kind == "fast" else None)
        (fast_t, fast_out), (ref_t, ref_out) = results["fast"], results["reference"]
        fast_ms.append(1000 * fast_t / len(series))
        ref_ms.append(1000 * ref_t / len(series))
        fast_s, ref_s, count = fast_s + fast_t, ref_s + ref_t, count + len(series)
        for one, other in zip(fast_out, ref_out, strict=True):
            mismatches += (one.exception, one.verdict) != (other.exception, other.verdict)
            anomalous += one.verdict is not None and one.verdict.anomalous
            filtered += one.exception is not None
    ratios = sorted(r / f for f, r in zip(fast_ms, ref_ms, strict=True))
    row = {
        "corpus": label, "series": count, "chunks": len(ratios),
        "anomalous_share": anomalous / count, "filtered_share": filtered / count, "mismatches": mismatches,
        "fast_ms": statistics.median(fast_ms), "reference_ms": statistics.median(ref_ms),
        "speedup": ref_s / fast_s, "chunk_ratio_median": statistics.median(ratios),
        "chunk_ratio_min": ratios[0], "chunk_ratio_max": ratios[-1],
    }
    print(f"{label:<26} {count:>6} series ({100 * row['anomalous_share']:4.1f}% anomalous, "
          f"{100 * row['filtered_share']:4.1f}% filtered)  median ms/series: fast {row['fast_ms']:7.4f}"
          f"  reference {row['reference_ms']:7.4f}  |  speed-up {row['speedup']:5.1f}x (totals), per chunk "
          f"median {row['chunk_ratio_median']:5.1f}x [{ratios[0]:.1f}-{ratios[-1]:.1f}] over {len(ratios)}"
          f"  mismatches {mismatches}", flush=True)
    return row


def chunked(make: Callable[..., tuple[list[Series], list[str]]], count: int, chunk: int, points: int,
            step: int) -> Iterable[tuple[list[Series], list[str]]]:
    return (make(first, min(chunk, count - first), points, step, NOW) for first in range(0, count, chunk))


def algorithm_profile(settings: config.Settings, count: int) -> dict:
    """Every algorithm on every 1,440-point series: True rate and cost per series in both engines."""
    every = settings.replace(ENABLE_ALL_ALGORITHMS_RUN_METRICS=True)
    series, names = calm_chunk(0, count, 1440, 60, NOW)
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
    parser.add_argument("--series", type=int, default=4_000, help="synthetic 1,440-point series per corpus")
    parser.add_argument("--series-10s", type=int, default=2_000, help="synthetic 8,640-point series per corpus")
    parser.add_argument("--chunk", type=int, default=500, help="series per chunk (per timed pass)")
    parser.add_argument("--profile-series", type=int, default=1_000, help="series for the per-algorithm table")
    parser.add_argument("--repeat", type=int, default=6, help="timed passes over each golden-vector corpus")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--plot", type=Path, default=None, help="write the PNG plot here")
    args = parser.parse_args()

    tune_allocator()
    settings = config.Settings({})
    fast = settings.replace(ANALYZER_ENGINE="fast")
    reference = settings.replace(ANALYZER_ENGINE="reference")
    corpora = {name: vectors(name) for name in ("corpus_60s", "corpus_10s")}
    rows = []
    with np.errstate(all="ignore"):
        # Warm both paths (lazy imports such as statsmodels', caches) so neither pays a first-call cost
        # inside the timings.
        for series, names in corpora.values():
            timed(series, names, fast)
            timed(series, names, reference)
        for name, (series, names) in corpora.items():
            rows.append(compare(f"vectors {name}", [(series, names)] * args.repeat, fast, reference))
        for points, step, count in ((1440, 60, args.series), (8640, 10, args.series_10s)):
            for corpus, make in (("calm", calm_chunk), ("varied", varied_chunk)):
                rows.append(compare(f"{corpus} {points} points", chunked(make, count, args.chunk, points, step),
                                    fast, reference))
    deferred = dict(DEFERRED)
    print(f"\nexactness fallback (votes taken from the reference detector), over every fast pass: {deferred}")
    profile = algorithm_profile(settings, args.profile_series)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "profile": profile, "deferred": deferred}, indent=1))
    if args.plot:
        plot(profile, rows, args.plot)


if __name__ == "__main__":
    main()
