"""The second stage: a flagged series re-checked against the same time of day on previous days.

Three-sigma algorithms over the last ``FULL_DURATION`` see a daily peak as an outlier; the second stage
asks a seasonal question instead. The *seasonal neighbours* of the last point are the points of the
longer history (:attr:`Parameters.duration`) lying within :attr:`Parameters.window` seconds of the same
phase of the period (:attr:`Parameters.period`, a day) on each earlier period. The flag stands only when
the tail (the mean of the last three points, as the first stage uses) is far from them by a robust
z-score: ``|tail - median| / (1.4826 * MAD)`` above :attr:`Parameters.threshold` (3.5, the usual cut for
modified z-scores; 1.4826 makes the MAD a standard deviation for normal data).

The stage only removes flags: when it cannot judge (fewer than :attr:`Parameters.min_periods` earlier
periods with neighbours) the first stage's verdict stands, and the decision says why.

A prototype measured by ``benchmarks/nab.py``; the daemon does not run it yet, so it has no settings
(docs/second-stage.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scales the median absolute deviation to the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
#: The check's name, as reported with every decision.
CHECK = "seasonal_robust_z"


@dataclass(frozen=True)
class Parameters:
    """The stage's parameters (seconds, except ``min_periods`` and ``threshold``)."""

    duration: float = 7 * 86400
    period: float = 86400
    window: float = 1800
    min_periods: int = 3
    threshold: float = 3.5


@dataclass(frozen=True)
class Decision:
    """Whether a flagged series is still anomalous, and why: the check, its statistic and threshold.

    ``statistic`` is the robust z-score (``inf`` when the neighbours do not vary and the tail differs),
    ``None`` with ``anomalous`` True when the stage could not judge (``reason`` says why).
    """

    anomalous: bool
    check: str
    statistic: float | None
    threshold: float
    neighbours: int
    reason: str


def seasonal_neighbours(
    timestamps: np.ndarray, values: np.ndarray, *, period: float, window: float, duration: float,
) -> tuple[np.ndarray, int]:
    """Values near the last point's phase on earlier periods within ``duration``, and how many periods.

    The current period is excluded (its points are the ones being judged).
    """
    now = float(timestamps[-1])
    ago = now - timestamps
    keep = (ago > period - window) & (ago <= duration + window)
    ago, kept = ago[keep], values[keep]
    periods = np.rint(ago / period)
    near = np.abs(ago - periods * period) <= window
    return kept[near], int(np.unique(periods[near]).shape[0])


def recheck(timestamps: np.ndarray, values: np.ndarray, parameters: Parameters = Parameters()) -> Decision:
    """The second stage's decision on a series the first stage flagged (ordered, finite, not empty)."""
    threshold = float(parameters.threshold)
    neighbours, periods = seasonal_neighbours(
        timestamps, values, period=parameters.period, window=parameters.window, duration=parameters.duration,
    )
    count = int(neighbours.shape[0])
    if periods < parameters.min_periods:
        return Decision(True, CHECK, None, threshold, count,
                        f"kept: {periods} earlier periods with neighbours, {parameters.min_periods} needed")
    tail = float(values[-3:].mean())
    median = float(np.median(neighbours))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(neighbours - median)))
    distance = abs(tail - median)
    statistic = (distance / spread) if spread > 0 else (np.inf if distance > 0 else 0.0)
    anomalous = statistic > threshold
    verb = "kept" if anomalous else "dropped"
    return Decision(anomalous, CHECK, float(statistic), threshold, count,
                    f"{verb}: robust z {statistic:.2f} against {count} seasonal neighbours over {periods} "
                    f"periods (threshold {threshold:g})")
