"""Synthetic corpora for benchmarks/algorithms.py, deterministic per series index.

* :func:`calm_chunk`: the shapes of ``skyline_analyzer.synthetic`` (noisy, seasonal, trend, counter, flat,
  random walk), 1 % ending in a spike: mostly calm traffic.
* :func:`varied_chunk`: the categories of the golden vectors (tests/data/vectors/README.md) in the
  proportions of ``corpus_60s``: ordinary traffic at magnitudes from 1 to 10**7, binary, sparse, gappy
  (shorter series), short, too short, lagging, stale, flat (Boring), flat with a late step, integer
  counters, and series ending in a spike or a step of 2 to 12 standard deviations, so that some 8 % are
  anomalous and about 14 % are filtered.
"""

from __future__ import annotations

import numpy as np

from skyline_analyzer.detection.series import Series
from skyline_analyzer.synthetic import KINDS, make_values

#: Category -> share of the varied corpus (the counts of corpus_60s, out of 300).
VARIED = {
    "noisy": 60, "seasonal": 53, "trend": 23, "random_walk": 11, "binary": 7, "lagging": 6, "spike_last": 27,
    "step_end": 18, "counter_int": 22, "flat": 28, "flat_step": 8, "sparse": 10, "gappy": 10, "short": 3,
    "too_short": 4, "stale": 10,
}
_CATEGORIES = [name for name, count in VARIED.items() for _ in range(count)]


def calm_chunk(first: int, count: int, points: int, step: int, now: int) -> tuple[list[Series], list[str]]:
    """Series ``first .. first+count-1`` of the calm corpus: 1 in 100 ending in a spike."""
    series, names = [], []
    timestamps = now - step * np.arange(points - 1, -1, -1, dtype=np.float64)
    for n in range(first, first + count):
        kind = KINDS[n % len(KINDS)]
        values = np.round(make_values(kind, points, seed=n, spike=n % 100 == 0), 3)
        series.append(Series(timestamps.copy(), values, int(timestamps[-1]), float(values[-1])))
        names.append(f"metrics.synthetic.{kind}.{n:05d}")
    return series, names


def _ordinary(category: str, points: int, rng: np.random.Generator) -> np.ndarray:
    level = 10.0 ** rng.uniform(0.0, 7.0)
    sigma = level * rng.uniform(0.02, 0.2)
    i = np.arange(points, dtype=np.float64)
    noise = rng.normal(0.0, sigma, points)
    if category == "seasonal":
        return level + 3 * sigma * np.sin(2 * np.pi * i / points * rng.integers(1, 4)) + noise
    if category == "trend":
        return level + sigma * rng.uniform(-5.0, 5.0) * i / points + noise
    if category == "random_walk":
        return level + np.cumsum(noise) / 10
    return level + noise


def _values(category: str, points: int, rng: np.random.Generator) -> np.ndarray:
    if category == "binary":
        return (rng.random(points) < rng.uniform(0.1, 0.9)).astype(np.float64)
    if category == "counter_int":
        level = rng.uniform(5.0, 5000.0)
        values = np.round(rng.normal(level, np.sqrt(level), points))
        if rng.random() < 0.3:
            values[-1] += np.round(rng.uniform(3.0, 12.0) * np.sqrt(level))
        return values
    if category == "flat":
        return np.full(points, float(rng.integers(0, 100)))
    if category == "flat_step":
        values = np.full(points, float(rng.integers(0, 10)))
        values[-int(rng.integers(6, 9)) :] += 100.0
        return values
    if category == "sparse":
        values = np.zeros(points)
        hits = rng.random(points) < rng.uniform(0.01, 0.1)
        values[hits] = np.round(rng.exponential(30.0, int(hits.sum())), 3)
        return values
    values = _ordinary(rng.choice(["noisy", "seasonal", "trend", "random_walk"])
                       if category in ("lagging", "stale", "gappy", "short", "spike_last", "step_end")
                       else category, points, rng)
    if category in ("spike_last", "step_end"):
        tail = 1 if category == "spike_last" else int(rng.integers(3, 7))
        values[-tail:] += rng.uniform(2.0, 12.0) * np.std(values)
    return np.round(values, 3)


def varied_chunk(first: int, count: int, points: int, step: int, now: int) -> tuple[list[Series], list[str]]:
    """Series ``first .. first+count-1`` of the varied corpus (categories in the golden vectors' shares)."""
    series, names = [], []
    for n in range(first, first + count):
        rng = np.random.default_rng(n)
        category = _CATEGORIES[n % len(_CATEGORIES)]
        end, length = now, points
        if category == "lagging":
            end = now - int(rng.integers(86, 500))
        elif category == "stale":
            end = now - int(rng.integers(988, 6357))
        elif category == "short":
            length = int(rng.integers(11, 47))
        timestamps = end - step * np.arange(length - 1, -1, -1, dtype=np.float64)
        values = _values(category, length, rng)
        if category == "gappy":
            keep = rng.random(length) < rng.uniform(0.55, 0.9)
            keep[-1] = True
            timestamps, values = timestamps[keep], values[keep]
        if category == "too_short":
            one = Series.empty()
        else:
            one = Series(timestamps, values, int(timestamps[-1]), float(values[-1]))
        series.append(one)
        names.append(f"metrics.varied.{category}.{n:05d}")
    return series, names
