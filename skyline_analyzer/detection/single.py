"""The fast engine for a series analysed alone: the consensus of one series with a length of its own.

A gappy or short series rarely shares its length with another series of the batch, so its block would
hold one row, and each batched detector's dozen numpy calls would be paid by that one series: more than
the reference detector costs. Here the series is analysed as a 1-D array, its shared statistics (the
sum, the mean, the squared deviations, the tail average) computed once in :class:`Alone`, and the votes of
the cheap, frequent algorithms taken from scalar forms of the batched detectors (``ks_test`` from the batched
form on this one row, so that its ADF step defers close calls exactly as in a block).

Exactness follows the batched engine's rules (:mod:`skyline_analyzer.detection.batch`): every statistic
is formed with the same floating-point operations in the same order as the reference (a 1-D ``sum`` is
numpy's pairwise sum, as in ``np.mean`` and ``np.std``; Python float arithmetic is IEEE double arithmetic,
as numpy's scalars), and a vote that this arithmetic cannot decide exactly (a histogram bin too narrow for
its edges) comes from the reference detector, counted as a fallback. The algorithms without a form here
run the reference detector itself, which for one series costs no more than a batched form would.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from skyline_analyzer.config import Settings
from skyline_analyzer.detection.algorithms import HISTOGRAM_BINS, HISTOGRAM_RARE_COUNT, tail_avg
from skyline_analyzer.detection.batched import (
    DEFER,
    FALSE,
    NARROW_BIN,
    SMALLEST_STEP,
    TRUE,
    grubbs_critical,
    moving_average_is_anomalous,
    squared_deviations,
)
from skyline_analyzer.detection.kstest import ks_votes
from skyline_analyzer.detection.reference import Recorder, Verdict, Vote, consensus, ensemble_of, run_algorithm
from skyline_analyzer.detection.series import Series


@dataclass
class Alone:
    """One series' arrays and the statistics its detectors share, each computed on first use."""

    timestamps: np.ndarray
    values: np.ndarray
    now: float
    full_duration: int
    _mean: float | None = None
    _squares: float | None = None
    _tail: float | None = None

    @property
    def length(self) -> int:
        return int(self.values.shape[0])

    @property
    def mean(self) -> float:
        """``np.mean``: the pairwise sum divided by the length."""
        if self._mean is None:
            self._mean = float(self.values.sum() / self.length)
        return self._mean

    @property
    def squares(self) -> float:
        """The sum of squared deviations from the mean, as ``np.std`` forms it before dividing."""
        if self._squares is None:
            self._squares = float(squared_deviations(self.values, self.mean))
        return self._squares

    @property
    def tail(self) -> float:
        """The reference's :func:`tail_avg`."""
        if self._tail is None:
            self._tail = tail_avg(self.values)
        return self._tail


def histogram_bins(alone: Alone) -> int:
    """Is the tail in a bin of at most 20 values (bin 0 only at the minimum)?

    The edges are numpy's (``np.histogram`` widens an empty range by half a unit each side, ``linspace``
    spaces them: ``k * step + first``, the last edge the maximum itself); the tail's bin is the last edge
    at or below it, and only that bin is counted. Bins narrower than ``NARROW_BIN`` of the magnitude, or
    edges that are not strictly increasing, are the reference's to decide (DEFER).
    """
    values = alone.values
    low, high = float(values.min()), float(values.max())
    first, last = (low - 0.5, high + 0.5) if low == high else (low, high)
    step = (last - first) / HISTOGRAM_BINS
    if not (math.isfinite(step) and step > max(abs(first), abs(last)) * NARROW_BIN and step >= SMALLEST_STEP):
        return DEFER
    edges = [k * step + first for k in range(HISTOGRAM_BINS)] + [last]
    if any(right <= left for left, right in pairwise(edges)):
        return DEFER
    tail = alone.tail
    if tail <= edges[0]:
        index = 0
    else:
        index = sum(edge <= tail for edge in edges) - 1
        # At or above the maximum (index 15), or NaN (index -1): in no bin.
        if not 1 <= index < HISTOGRAM_BINS:
            return FALSE
    below_upper = values.shape[0] if index == HISTOGRAM_BINS - 1 else np.count_nonzero(values < edges[index + 1])
    below_lower = 0 if index == 0 else np.count_nonzero(values < edges[index])
    return TRUE if below_upper - below_lower <= HISTOGRAM_RARE_COUNT else FALSE


def first_hour_average(alone: Alone) -> int:
    """``|tail - mean(S)| > 3 * sample-std(S)``, ``S`` the values older than ``now - (FULL_DURATION - 3600)``.

    Fewer than two such values make the mean or the std NaN: False.
    """
    first_hour = alone.values[alone.timestamps < alone.now - (alone.full_duration - 3600)]
    count = first_hour.shape[0]
    if count < 2:
        return FALSE
    mean = float(first_hour.sum() / count)
    std = math.sqrt(float(squared_deviations(first_hour, mean)) / (count - 1))
    return TRUE if abs(alone.tail - mean) > 3 * std else FALSE


def stddev_from_average(alone: Alone) -> int:
    """``|tail - mean| > 3 * sample-std`` (one point: NaN std, False)."""
    n = alone.length
    if n < 2:
        return FALSE
    return TRUE if abs(alone.tail - alone.mean) > 3 * math.sqrt(alone.squares / (n - 1)) else FALSE


def grubbs(alone: Alone) -> int:
    """``(tail - mean) / pop-std > G(n)`` (:func:`grubbs_critical`); False when the std is 0 or ``n <= 2``."""
    n = alone.length
    if n <= 2:
        return FALSE
    std = math.sqrt(alone.squares / n)
    if std == 0:
        return FALSE
    return TRUE if (alone.tail - alone.mean) / std > grubbs_critical(n) else FALSE


def ks_test(alone: Alone) -> int:
    """The batched ``ks_test`` (:func:`ks_votes`) on this one row: its windows, its exact KS test, its ADF
    step with the close calls deferred."""
    votes, decided = ks_votes(alone.timestamps[None, :], alone.values[None, :], alone.now)
    return DEFER if not decided[0] else TRUE if votes[0] else FALSE


def stddev_from_moving_average(alone: Alone) -> int:
    """The last value against the EWMA (centre of mass 50), the batched form's arithmetic on one row."""
    return TRUE if moving_average_is_anomalous(alone.values) else FALSE


#: The scalar form of each algorithm that has one; the others run the reference detector.
SCALAR: dict[str, Callable[[Alone], int]] = {
    "histogram_bins": histogram_bins,
    "first_hour_average": first_hour_average,
    "stddev_from_average": stddev_from_average,
    "grubbs": grubbs,
    "ks_test": ks_test,
    "stddev_from_moving_average": stddev_from_moving_average,
}


def evaluate(
    series: Series,
    name: str,
    settings: Settings,
    now: float,
    recorder: Recorder | None,
    deferred: Counter[str] | None,
) -> Verdict:
    """The verdict on one series that passed the filters: the reference's ensemble, early exit included.

    Each algorithm's run time goes to ``recorder`` (with ``ENABLE_ALGORITHM_RUN_METRICS``), as the
    reference records it; a vote left to the reference detector is counted in ``deferred``.
    """
    alone = Alone(series.timestamps, series.values, now, settings.FULL_DURATION)
    timer = recorder if settings.ENABLE_ALGORITHM_RUN_METRICS else None

    def timed_vote(algorithm: str) -> Vote:
        started = time.perf_counter()
        vote = _vote(alone, algorithm, series, name, settings, now, recorder, deferred)
        if timer is not None:
            timer.record(algorithm, time.perf_counter() - started)
        return vote

    with np.errstate(all="ignore"):
        ensemble = ensemble_of(timed_vote, settings)
    return consensus(ensemble, series, settings)


def _vote(
    alone: Alone, algorithm: str, series: Series, name: str, settings: Settings, now: float,
    recorder: Recorder | None, deferred: Counter[str] | None,
) -> Vote:
    scalar = SCALAR.get(algorithm)
    if scalar is not None:
        try:
            code = scalar(alone)
        except Exception:
            # Not expected for finite input; the reference then decides (and records any error).
            code = DEFER
        if code != DEFER:
            return code == TRUE
        if deferred is not None:
            deferred[algorithm] += 1
    # Not timed here: the caller times the whole vote.
    return run_algorithm(algorithm, series, settings, now, name, recorder, timed=False)
