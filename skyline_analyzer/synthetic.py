"""Synthetic metrics for the demo, the seeder, tests and benchmarks: deterministic for a given seed."""

from __future__ import annotations

import numpy as np

#: Shapes :func:`make_series` can draw.
KINDS = ("noisy", "seasonal", "trend", "counter", "flat", "random_walk")


def make_values(kind: str, points: int = 1440, seed: int = 0, spike: bool = False) -> np.ndarray:
    """``points`` float64 values of one shape, deterministic for ``seed``.

    ``spike=True`` replaces the last three values with a large upward excursion, which the default
    consensus flags on every kind.
    """
    rng = np.random.default_rng(seed)
    i = np.arange(points, dtype=np.float64)
    if kind == "noisy":
        values = 100.0 + rng.normal(0, 5, points)
    elif kind == "seasonal":
        values = 500.0 + 200.0 * np.sin(2 * np.pi * i / points) + rng.normal(0, 10, points)
    elif kind == "trend":
        values = 50.0 + 0.05 * i + rng.normal(0, 2, points)
    elif kind == "counter":
        values = np.round(1000.0 + rng.normal(0, 30, points))
    elif kind == "flat":
        values = np.full(points, 42.0)
    elif kind == "random_walk":
        values = 1000.0 + np.cumsum(rng.normal(0, 1, points))
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if spike:
        scale = max(float(np.std(values[:-3])), 1.0)
        values[-3:] = float(np.max(values[:-3])) + 40.0 * scale
    return values


def make_series(
    kind: str, end: int, points: int = 1440, step: int = 60, seed: int = 0, spike: bool = False
) -> list[list[float | int]]:
    """``points`` datapoints ``[ts, value]`` every ``step`` seconds, the last at ``end`` (:func:`make_values`)."""
    values = make_values(kind, points, seed, spike)
    timestamps = end - step * np.arange(points - 1, -1, -1, dtype=np.int64)
    return [[int(t), round(float(v), 3)] for t, v in zip(timestamps, values, strict=True)]


def make_metrics(count: int, end: int, anomalous: int = 0, points: int = 1440, step: int = 60,
                 seed: int = 0) -> dict[str, list[list[float | int]]]:
    """``count`` metrics named ``synthetic.<kind>.<n>``; the first ``anomalous`` end in a spike."""
    metrics = {}
    for n in range(count):
        kind = KINDS[n % len(KINDS)] if n >= anomalous else KINDS[n % 4]
        metrics[f"synthetic.{kind}.{n:05d}"] = make_series(kind, end, points, step, seed + n, spike=n < anomalous)
    return metrics
