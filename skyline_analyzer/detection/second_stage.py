"""The second stage: a flagged series re-checked against the same time of day on previous days.

Three-sigma algorithms over the last ``FULL_DURATION`` see a daily peak as an outlier; the second stage
asks a seasonal question instead. The *seasonal neighbours* of the last point are the points of the
longer history (``SECOND_STAGE_DURATION``) lying within ``SECOND_STAGE_WINDOW`` seconds of the same
phase of the period (``SECOND_STAGE_PERIOD``, a day) on each earlier period. The flag stands only when
the tail (the mean of the last three points, as the first stage uses) is far from them by a robust
z-score: ``|tail - median| / (1.4826 * MAD)`` above ``SECOND_STAGE_THRESHOLD`` (3.5, the usual cut for
modified z-scores; 1.4826 makes the MAD a standard deviation for normal data).

The stage only removes flags: when it cannot judge (fewer than ``SECOND_STAGE_MIN_PERIODS`` earlier
periods with neighbours) the first stage's verdict stands, and the decision says why. See
docs/second-stage.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyline_analyzer.config import Settings

#: Scales the median absolute deviation to the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
#: The check's name, as reported with every decision.
CHECK = "seasonal_robust_z"


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


def recheck(timestamps: np.ndarray, values: np.ndarray, settings: Settings) -> Decision:
    """The second stage's decision on a series the first stage flagged (ordered, finite, not empty)."""
    threshold = float(settings.SECOND_STAGE_THRESHOLD)
    neighbours, periods = seasonal_neighbours(
        timestamps, values, period=settings.SECOND_STAGE_PERIOD, window=settings.SECOND_STAGE_WINDOW,
        duration=settings.SECOND_STAGE_DURATION,
    )
    count = int(neighbours.shape[0])
    if periods < settings.SECOND_STAGE_MIN_PERIODS:
        return Decision(True, CHECK, None, threshold, count,
                        f"kept: {periods} earlier periods with neighbours, "
                        f"{settings.SECOND_STAGE_MIN_PERIODS} needed")
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
