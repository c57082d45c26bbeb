"""Why a series was (or was not) flagged: each algorithm's statistic, threshold and vote.

Each function here recomputes, by the same formulas and in the same floating-point order as its
detector in :mod:`skyline_analyzer.detection.algorithms`, the figure the detector compares and the bound
it compares it with, and derives the vote from that comparison. The votes are therefore the detectors'
votes (``tests/test_explain.py`` checks them against ``skyline-analyzer check --all-algorithms`` on the
golden vectors); the figures are what the web app shows (docs/webapp.md). Every algorithm runs: there is
no early exit here, since an explanation wants every vote.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import t as student_t

from skyline_analyzer.config import Settings
from skyline_analyzer.detection import algorithms as alg
from skyline_analyzer.detection.numerics import adf_pvalue, ewm_last, ks_2samp_asymptotic, ols_residuals, py2_round
from skyline_analyzer.detection.reference import Vote, check_filters
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesException


@dataclass(frozen=True)
class Reason:
    """One algorithm's vote and the comparison behind it.

    ``statistic`` and ``threshold`` are None when the algorithm decided without comparing them (a zero
    spread, too few points); ``note`` then says why. ``details`` holds any further figures it used.
    """

    algorithm: str
    vote: Vote
    statistic: float | None
    threshold: float | None
    rule: str
    note: str = ""
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    """Every algorithm's reason, the consensus and the filter (TooShort, Stale, Boring) that would apply."""

    reasons: list[Reason]
    anomalous: bool
    false_votes: int
    consensus: int
    exception: str | None


def _number(x: float) -> float | None:
    """A figure as JSON can carry it: None for NaN and infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


def _reason(name: str, statistic: float, threshold: float, rule: str, **details: float) -> Reason:
    """A plain ``statistic > threshold`` comparison (False when either is NaN, as in the detector)."""
    return Reason(name, bool(statistic > threshold), _number(statistic), _number(threshold), rule,
                  details={k: _number(v) for k, v in details.items()})


def median_absolute_deviation(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|v[-1] - median(v)| / MAD``; threshold 6. A zero MAD votes False without a ratio."""
    name, rule = "median_absolute_deviation", "|v[-1] - median| / MAD > 6"
    deviations = np.abs(values - np.median(values))
    mad = np.median(deviations)
    if mad == 0:
        return Reason(name, False, None, 6.0, rule, note="MAD is 0")
    return _reason(name, deviations[-1] / mad, 6, rule, mad=mad)


def grubbs(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic the signed z-score of ``tail_avg``; threshold Grubbs' critical value ``G``."""
    name, rule = "grubbs", "(tail_avg - mean) / pop-std > G"
    std = np.std(values)
    if std == 0:
        return Reason(name, False, None, None, rule, note="the standard deviation is 0")
    z_score = (alg.tail_avg(values) - np.mean(values)) / std
    n = values.shape[0]
    t_value = student_t.isf(0.05 / (2 * n), n - 2)
    t_squared = t_value * t_value
    critical = ((n - 1) / np.sqrt(n)) * np.sqrt(t_squared / (n - 2 + t_squared))
    return _reason(name, z_score, critical, rule, tail_avg=alg.tail_avg(values))


def _mean_and_std(name: str, rule: str, centre: float, sample: np.ndarray, point: float, **details: float) -> Reason:
    """``|point - centre| > 3 * sample-std(sample)``, the shape of three detectors."""
    return _reason(name, abs(point - centre), 3 * alg._sample_std(sample), rule, **details)


def first_hour_average(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|tail_avg - mean(S)|`` over the oldest hour ``S``; threshold ``3 * sample-std(S)``."""
    first_hour = values[ts < now - (full_duration - 3600)]
    return _mean_and_std("first_hour_average", "|tail_avg - mean(first hour)| > 3 * std(first hour)",
                         alg._mean(first_hour), first_hour, alg.tail_avg(values), points=first_hour.shape[0])


def stddev_from_average(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|tail_avg - mean(v)|``; threshold ``3 * sample-std(v)``."""
    return _mean_and_std("stddev_from_average", "|tail_avg - mean| > 3 * std", alg._mean(values), values,
                         alg.tail_avg(values))


def stddev_from_moving_average(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|v[-1] - EWMA|`` (centre of mass 50); threshold ``3 * EWMSTD``."""
    mean, std = ewm_last(values)
    return _reason("stddev_from_moving_average", abs(values[-1] - mean), 3 * std, "|v[-1] - EWMA| > 3 * EWMSTD",
                   ewma=mean)


def mean_subtraction_cumulation(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|v[-1] - mean(v[:-1])|``; threshold ``3 * sample-std`` of the centred history."""
    centred = values - alg._mean(values[:-1])
    return _reason("mean_subtraction_cumulation", abs(centred[-1]), 3 * alg._sample_std(centred[:-1]),
                   "|v[-1] - mean(history)| > 3 * std(history)")


def least_squares(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic ``|tau|``, the mean of the last three OLS residuals; threshold ``3 * pop-std`` of them.

    The vote also needs ``round(std)`` and ``round(tau)`` (Python 2 rounding) to be non-zero.
    """
    name, rule = "least_squares", "|mean of last 3 residuals| > 3 * std(residuals), both rounding to non-zero"
    if values.shape[0] < 3:
        return Reason(name, False, None, None, rule, note="fewer than 3 points")
    errors = ols_residuals(ts, values)
    std = float(np.std(errors))
    tau = float((errors[-1] + errors[-2] + errors[-3]) / 3)
    vote = abs(tau) > std * 3 and py2_round(std) != 0 and py2_round(tau) != 0
    note = "" if vote or abs(tau) <= std * 3 else "std or tau rounds to 0"
    return Reason(name, vote, _number(abs(tau)), _number(std * 3), rule, note=note)


def histogram_bins(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic the count of the 15-bin histogram bin ``tail_avg`` falls in; threshold 20 (at most).

    The bins are the detector's: bin 0 holds only ``t <= edges[0]``, bin ``k`` holds
    ``edges[k] <= t < edges[k+1]``, so the maximum itself is in no bin and never rare.
    """
    name, rule = "histogram_bins", f"count of tail_avg's bin <= {alg.HISTOGRAM_RARE_COUNT}"
    tail = alg.tail_avg(values)
    counts, edges = np.histogram(values, bins=alg.HISTOGRAM_BINS)
    for index in range(counts.shape[0]):
        inside = tail <= edges[0] if index == 0 else edges[index] <= tail < edges[index + 1]
        if inside:
            count = int(counts[index])
            return Reason(name, count <= alg.HISTOGRAM_RARE_COUNT, float(count), float(alg.HISTOGRAM_RARE_COUNT),
                          rule, details={"bin": float(index), "tail_avg": _number(tail)})
    return Reason(name, False, None, float(alg.HISTOGRAM_RARE_COUNT), rule,
                  note="tail_avg is in no bin (it is the maximum)", details={"tail_avg": _number(tail)})


def ks_test(ts: np.ndarray, values: np.ndarray, now: float, full_duration: int) -> Reason:
    """Statistic the KS distance ``D`` of the last 10 minutes against the 50 before; threshold 0.5.

    The vote also needs the KS p-value below 0.05 and the reference window's ADF p-value below 0.05.
    """
    name, rule = "ks_test", "D > 0.5 and KS p < 0.05 and ADF p(reference) < 0.05"
    reference = values[(ts >= now - alg.KS_REFERENCE_START) & (ts < now - alg.KS_PROBE_START)]
    probe = values[ts >= now - alg.KS_PROBE_START]
    sizes = {"reference_points": float(reference.shape[0]), "probe_points": float(probe.shape[0])}
    if reference.shape[0] < alg.KS_MIN_SAMPLES or probe.shape[0] < alg.KS_MIN_SAMPLES:
        return Reason(name, False, None, 0.5, rule, note=f"fewer than {alg.KS_MIN_SAMPLES} points in a window",
                      details=sizes)
    statistic, p_value = ks_2samp_asymptotic(reference, probe)
    details = {**sizes, "ks_p_value": _number(p_value)}
    vote = False
    if p_value < 0.05 and statistic > 0.5:
        adf = adf_pvalue(reference)
        details["adf_p_value"] = _number(adf)
        vote = bool(adf < 0.05)
    return Reason(name, vote, _number(statistic), 0.5, rule, details=details)


EXPLAINERS: dict[str, Callable[[np.ndarray, np.ndarray, float, int], Reason]] = {
    f.__name__: f
    for f in (histogram_bins, first_hour_average, stddev_from_average, grubbs, ks_test, mean_subtraction_cumulation,
              median_absolute_deviation, stddev_from_moving_average, least_squares)
}


def explain_algorithm(name: str, series: Series, settings: Settings, now: float) -> Reason:
    """One algorithm's reason; an error is a None vote (as the daemon records it) with the error as note."""
    try:
        with np.errstate(all="ignore"):
            return EXPLAINERS[name](series.timestamps, series.values, now, settings.FULL_DURATION)
    except Exception as exc:
        return Reason(name, None, None, None, "", note=f"raised {type(exc).__name__}")


def explain(series: Series, settings: Settings, now: float) -> Explanation:
    """Every one of ``settings.ALGORITHMS`` on ``series``, and the consensus they reach.

    ``exception`` names the filter that would keep the daemon from analysing the series; the votes are
    computed anyway (an empty series has none), and the verdict is then not anomalous.
    """
    exception = None
    try:
        check_filters(series, settings, now)
    except SeriesException as exc:
        exception = str(exc.kind)
    reasons = [] if len(series) == 0 else [explain_algorithm(n, series, settings, now) for n in settings.ALGORITHMS]
    false_votes = sum(r.vote is False for r in reasons)
    anomalous = exception is None and false_votes <= len(settings.ALGORITHMS) - settings.CONSENSUS
    return Explanation(reasons, anomalous, false_votes, settings.CONSENSUS, exception)
