"""The nine Skyline consensus algorithms (v1.2.8), as plain functions over numpy arrays.

Every detector has the same signature::

    detector(timestamps, values, *, now, full_duration) -> bool

``timestamps`` and ``values`` are float64 arrays of equal, non-zero length, in the order the datapoints
were decoded (the Analyzer never sorts). ``now`` is the current epoch time: the original read the wall
clock; here the caller passes it. ``full_duration`` is ``settings.FULL_DURATION``. A detector returns a
Python ``bool``; it may raise, and the verdict (:mod:`skyline_analyzer.detection.reference`) then records ``None``
for it, as v1.2.8's per-algorithm ``try/except`` did.

Conventions (docs/algorithms.md#conventions): *pop-std* is ``ddof=0``, *sample-std* ``ddof=1`` (NaN below two values);
every comparison with NaN is False.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.stats import t as student_t

from skyline_analyzer.detection.numerics import adf_pvalue, ewm_last, ks_2samp_asymptotic, ols_residuals, py2_round

Detector = Callable[..., bool]


def tail_avg(values: np.ndarray) -> float:
    """Mean of the last three values: ``(v[-1] + v[-2] + v[-3]) / 3``; ``v[-1]`` below three points.

    The additions are made in that order, as the original did, so the float result is identical.
    Raises ``IndexError`` on an empty array.
    """
    if values.shape[0] < 3:
        return float(values[-1])
    return float((values[-1] + values[-2] + values[-3]) / 3)


def _sample_std(values: np.ndarray) -> float:
    """pandas ``Series.std()``: ddof 1, NaN below two values (numpy would warn and divide by <= 0)."""
    if values.shape[0] < 2:
        return math.nan
    return float(np.std(values, ddof=1))


def _mean(values: np.ndarray) -> float:
    """pandas ``Series.mean()``: NaN for an empty series."""
    if values.shape[0] == 0:
        return math.nan
    return float(np.mean(values))


def median_absolute_deviation(
    timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int
) -> bool:
    """Median absolute deviation test of the last value.

    ``m = median(v)``, ``d_i = |v_i - m|``, ``MAD = median(d)``. Returns False when ``MAD == 0``,
    otherwise ``d[-1] / MAD > 6``. Uses the last *raw* value, not :func:`tail_avg`.
    """
    deviations = np.abs(values - np.median(values))
    mad = np.median(deviations)
    if mad == 0:
        return False
    return bool(deviations[-1] / mad > 6)


def grubbs(timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int) -> bool:
    """One-sided Grubbs' outlier test of :func:`tail_avg`.

    ``s = pop-std(v)`` (False when 0); ``z = (tail_avg - mean(v)) / s``, signed, so only upward
    excursions count; ``t = StudentT.isf(0.05 / (2n), df=n-2)``;
    ``G = ((n-1)/sqrt(n)) * sqrt(t^2 / (n - 2 + t^2))``; anomalous when ``z > G``.
    With ``n <= 2`` the degrees of freedom are not positive, ``t`` is NaN and the result is False.
    """
    std = np.std(values)
    if std == 0:
        return False
    z_score = (tail_avg(values) - np.mean(values)) / std
    n = values.shape[0]
    threshold = student_t.isf(0.05 / (2 * n), n - 2)
    threshold_sq = threshold * threshold
    grubbs_score = ((n - 1) / np.sqrt(n)) * np.sqrt(threshold_sq / (n - 2 + threshold_sq))
    return bool(z_score > grubbs_score)


def first_hour_average(
    timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int
) -> bool:
    """:func:`tail_avg` against the oldest hour of the ``FULL_DURATION`` window.

    ``S = [v | t < now - (FULL_DURATION - 3600)]`` (strict ``<``; points older than FULL_DURATION that
    Roomba has not trimmed yet are included). Anomalous when ``|tail_avg - mean(S)| > 3 * sample-std(S)``.
    An empty or one-point ``S`` gives NaN and so False; a zero std with a differing tail gives True.
    """
    cutoff = now - (full_duration - 3600)
    first_hour = values[timestamps < cutoff]
    return bool(abs(tail_avg(values) - _mean(first_hour)) > 3 * _sample_std(first_hour))


def stddev_from_average(
    timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int
) -> bool:
    """Anomalous when ``|tail_avg - mean(v)| > 3 * sample-std(v)``."""
    return bool(abs(tail_avg(values) - _mean(values)) > 3 * _sample_std(values))


def stddev_from_moving_average(
    timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int
) -> bool:
    """Last raw value against the exponentially weighted moving average (centre of mass 50).

    Anomalous when ``|v[-1] - EWMA| > 3 * EWMSTD`` with the pandas ``ewm(com=50)`` mean and unbiased
    std at the last point (:func:`skyline_analyzer.detection.numerics.ewm_last`). One point gives NaN: False.
    """
    mean, std = ewm_last(values)
    return bool(abs(values[-1] - mean) > 3 * std)


def mean_subtraction_cumulation(
    timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int
) -> bool:
    """Last value against the mean and sample-std of all the values before it.

    ``z_i = v_i - mean(v[:-1])``; anomalous when ``|z[-1]| > 3 * sample-std(z[:-1])``. Nothing is
    accumulated despite the name. One point gives a NaN mean: False. A constant history (std 0) makes
    any change True. (The original mapped falsy values, None and 0, to 0; values here are numbers.)
    """
    centred = values - _mean(values[:-1])
    return bool(abs(centred[-1]) > 3 * _sample_std(centred[:-1]))


def least_squares(timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int) -> bool:
    """Mean of the last three residuals of an OLS line against the residuals' pop-std.

    ``e = v - (m t + c)`` (exact OLS, :func:`skyline_analyzer.detection.numerics.ols_residuals`); below three
    points False; ``s = pop-std(e)``, ``tau = (e[-1] + e[-2] + e[-3]) / 3``; anomalous when
    ``|tau| > 3 s`` and ``round(s) != 0`` and ``round(tau) != 0``, with Python 2 rounding (half away from
    zero), so ``s`` and ``tau`` must each be at least 0.5 in magnitude.
    """
    if values.shape[0] < 3:
        return False
    errors = ols_residuals(timestamps, values)
    std = float(np.std(errors))
    tau = float((errors[-1] + errors[-2] + errors[-3]) / 3)
    return abs(tau) > std * 3 and py2_round(std) != 0 and py2_round(tau) != 0


#: ``np.histogram(values, bins=15)`` as in the original.
HISTOGRAM_BINS = 15
#: A bin holding at most this many values is "rare".
HISTOGRAM_RARE_COUNT = 20


def histogram_bins(timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int) -> bool:
    """Is :func:`tail_avg` in a rarely populated bin of a 15-bin histogram of the values?

    For each bin ``k`` with ``count <= 20`` (empty bins included): bin 0 flags only ``t <= edges[0]``
    (the global minimum); bin ``k > 0`` flags ``edges[k] <= t < edges[k+1]``, so ``t == max`` is never
    flagged. One datapoint gives True (numpy widens a zero range to ``[min - 0.5, max + 0.5]``).
    """
    tail = tail_avg(values)
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    for index in np.flatnonzero(counts <= HISTOGRAM_RARE_COUNT):
        if index == 0:
            if tail <= edges[0]:
                return True
        elif edges[index] <= tail < edges[index + 1]:
            return True
    return False


#: ks_test windows, in seconds before ``now``.
KS_REFERENCE_START = 3600
KS_PROBE_START = 600
KS_MIN_SAMPLES = 20


def ks_test(timestamps: np.ndarray, values: np.ndarray, *, now: float, full_duration: int) -> bool:
    """Has the distribution of the last 10 minutes moved away from the 50 minutes before them?

    Reference ``R = [v | now-3600 <= t < now-600]``, probe ``P = [v | t >= now-600]``. False unless both
    hold at least 20 points (never the case at 60 s resolution). Anomalous when the two-sample KS test
    (scipy 1.1 asymptotic p-value) gives ``p < 0.05`` and ``D > 0.5`` *and* the augmented Dickey-Fuller
    test of ``R`` (maxlag 10) gives a p-value below 0.05 (the reference window is stationary).
    """
    reference = values[(timestamps >= now - KS_REFERENCE_START) & (timestamps < now - KS_PROBE_START)]
    probe = values[timestamps >= now - KS_PROBE_START]
    if reference.shape[0] < KS_MIN_SAMPLES or probe.shape[0] < KS_MIN_SAMPLES:
        return False
    statistic, p_value = ks_2samp_asymptotic(reference, probe)
    if p_value < 0.05 and statistic > 0.5:
        return bool(adf_pvalue(reference) < 0.05)
    return False


#: Every detector by the name used in ``settings.ALGORITHMS``.
DETECTORS: dict[str, Detector] = {
    detector.__name__: detector
    for detector in (
        histogram_bins,
        first_hour_average,
        stddev_from_average,
        grubbs,
        ks_test,
        mean_subtraction_cumulation,
        median_absolute_deviation,
        stddev_from_moving_average,
        least_squares,
    )
}


#: Second order: a repeat of the same datapoint within this many seconds is ignored.
SECOND_ORDER_REPEAT_WINDOW = 300


def interval_is_anomalous(trigger_times: list[float]) -> bool:
    """The second-order test on a metric's trigger history (docs/algorithms.md#second-order).

    ``I`` are the gaps between consecutive trigger times; anomalous when
    ``|I[-1] - mean(I)| > 3 * sample-std(I)``. One interval gives a NaN std: False. A single value can
    only exceed three sample-stds among at least 11 intervals.
    """
    intervals = np.diff(np.asarray(trigger_times, dtype=np.float64))
    if intervals.shape[0] == 0:
        return False
    return bool(abs(intervals[-1] - intervals.mean()) > 3 * _sample_std(intervals))
