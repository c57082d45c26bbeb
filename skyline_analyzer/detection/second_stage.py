"""The second stage: a candidate series re-checked against the same time of day on earlier days.

Three-sigma algorithms over the last ``FULL_DURATION`` see a daily peak as an outlier; the second stage
asks a seasonal question instead, on a longer history kept at a coarser resolution (``history``: buckets
of :attr:`Parameters.resolution` seconds over :attr:`Parameters.duration`, see :func:`downsample`).

The *seasonal neighbours* of now are the buckets within :attr:`Parameters.window` seconds of the same
phase of the period (:attr:`Parameters.period`, a day) on each earlier period. The *tail* is the mean of
the last three points of the recent series, as the first stage's algorithms use. For each earlier period,
the distance from the tail to its closest neighbour; the statistic is the median of these distances over
the periods, in robust standard deviations of the neighbours (``1.4826 * MAD``; 1.4826 makes the MAD a
standard deviation for normal data), and the candidate is anomalous above :attr:`Parameters.threshold`.
In words: on most earlier days, was there a value like this near this time? The closest neighbour lets a
short daily peak pass (every day had one, though an hour's window holds mostly ordinary values); the
median over the days tolerates a day or two that were themselves anomalous. The spread has a floor,
:data:`MIN_SPREAD` of the neighbours' median magnitude, so that neighbours which barely vary (a flat
night, a quantised counter) do not turn a negligible difference into an infinite score.

When it cannot judge (fewer than :attr:`Parameters.min_periods` earlier periods with neighbours) the
decision is ``None``: the caller keeps the first stage's verdict. Every decision carries the check's
name, the statistic, the threshold, the number of neighbours and a one-line reason (docs/second-stage.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Scales the median absolute deviation to the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
#: The check's name, as reported with every decision.
CHECK = "seasonal_nearest"
#: Points of the recent series averaged into the tail (the first stage's algorithms use three).
TAIL_POINTS = 3


#: The neighbours' spread never counts as less than this share of their median's magnitude.
MIN_SPREAD = 0.01


@dataclass(frozen=True)
class Parameters:
    """The stage's parameters: seconds, except ``min_periods`` and ``threshold`` (settings ``SECOND_STAGE_*``)."""

    duration: float
    resolution: float
    period: float
    window: float
    min_periods: int
    threshold: float
    min_spread: float = MIN_SPREAD

    @classmethod
    def from_settings(cls, settings: Any) -> Parameters:
        return cls(settings.SECOND_STAGE_DURATION, settings.SECOND_STAGE_RESOLUTION, settings.SECOND_STAGE_PERIOD,
                   settings.SECOND_STAGE_WINDOW, settings.SECOND_STAGE_MIN_PERIODS, settings.SECOND_STAGE_THRESHOLD)


@dataclass(frozen=True)
class Decision:
    """Whether a candidate is anomalous on the longer history, and why: check, statistic, threshold.

    ``statistic`` is the robust z-score of the tail among ``neighbours`` seasonal neighbours.
    """

    anomalous: bool
    check: str
    statistic: float
    threshold: float
    neighbours: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        """The decision as ``anomalies.json``, the run report and the alerts carry it."""
        # JSON has no infinity: an unbounded score (neighbours all equal to 0) is reported as null.
        statistic = round(self.statistic, 4) if np.isfinite(self.statistic) else None
        return {"check": self.check, "anomalous": self.anomalous, "statistic": statistic,
                "threshold": self.threshold, "neighbours": self.neighbours, "reason": self.reason}


def downsample(timestamps: np.ndarray, values: np.ndarray, resolution: float,
               after: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Complete buckets of ``resolution`` seconds later than ``after``: (bucket starts, means).

    A bucket is complete once a point of a later bucket exists, so the bucket holding the last point is
    left out (it may still grow). ``timestamps`` need not be sorted.
    """
    if timestamps.shape[0] == 0:
        return np.empty(0), np.empty(0)
    starts = np.floor(timestamps / resolution) * resolution
    current = starts.max()
    keep = (starts < current) & (starts > after)
    starts, kept = starts[keep], values[keep]
    buckets, inverse = np.unique(starts, return_inverse=True)
    sums = np.bincount(inverse, weights=kept, minlength=buckets.shape[0])
    counts = np.bincount(inverse, minlength=buckets.shape[0])
    return buckets, sums / np.maximum(counts, 1)


def seasonal_neighbours(
    timestamps: np.ndarray, values: np.ndarray, now: float, parameters: Parameters,
) -> tuple[np.ndarray, np.ndarray]:
    """Values near ``now``'s phase on earlier periods within the duration, and the period each is from
    (1 for the period before, ...). The current period is excluded (its points are the ones being judged).
    """
    period, window = parameters.period, parameters.window
    ago = now - timestamps
    keep = (ago > period - window) & (ago <= parameters.duration + window)
    ago, kept = ago[keep], values[keep]
    periods = np.rint(ago / period)
    near = np.abs(ago - periods * period) <= window
    return kept[near], periods[near]


def recheck(history: tuple[np.ndarray, np.ndarray], recent: tuple[np.ndarray, np.ndarray],
            parameters: Parameters) -> Decision | None:
    """The decision on a candidate: ``history`` is the longer, downsampled series, ``recent`` the series
    the first stage analysed (time order, finite, not empty); ``None`` when it cannot judge."""
    threshold = float(parameters.threshold)
    now = float(recent[0][-1])
    neighbours, periods = seasonal_neighbours(history[0], history[1], now, parameters)
    days = np.unique(periods)
    if days.shape[0] < parameters.min_periods:
        return None
    count = int(neighbours.shape[0])
    tail = float(recent[1][-TAIL_POINTS:].mean())
    # The tail's distance to the closest neighbour of each earlier day; the median over the days.
    gaps = np.abs(neighbours - tail)
    distance = float(np.median([gaps[periods == day].min() for day in days]))
    median = float(np.median(neighbours))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(neighbours - median)))
    spread = max(mad, parameters.min_spread * abs(median))
    statistic = distance / spread if spread > 0 else (np.inf if distance > 0 else 0.0)
    anomalous = bool(statistic > threshold)
    verb = "anomalous" if anomalous else "normal"
    return Decision(anomalous, CHECK, float(statistic), threshold, count,
                    f"{verb} for the time of day: tail {tail:.6g} is {statistic:.2f} robust sigmas from the "
                    f"closest of {count} neighbours on {days.shape[0]} earlier days (threshold {threshold:g})")
