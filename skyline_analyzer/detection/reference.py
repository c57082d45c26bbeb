"""The consensus verdict: ``run_selected_algorithm`` of Skyline v1.2.8 (docs/algorithms.md#the-verdict).

The filters run in order (TooShort, Stale, Boring); then the ``ALGORITHMS`` run
in the configured order, each result recorded in the ensemble as True, False or None (the algorithm
raised). With ``RUN_OPTIMIZED_WORKFLOW`` the loop stops running algorithms once ``N - CONSENSUS + 1``
Falses make consensus impossible; the skipped ones are recorded as False, so the verdict never changes.
A series is anomalous when ``ensemble.count(False) <= N - CONSENSUS``: a None is *not* a False, so an
erroring algorithm votes "anomalous" (docs/departures.md#a1: preserved and logged).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from skyline_analyzer.config import Settings
from skyline_analyzer.detection.algorithms import DETECTORS
from skyline_analyzer.detection.series import Number, Series
from skyline_analyzer.exceptions import Boring, Stale, TooShort

Vote = bool | None


class Recorder(Protocol):
    """Receives what the algorithms did; detection itself writes no file and logs nothing.

    The Analyzer's implementation (:class:`skyline_analyzer.analyzer.run_metrics.RunMetricsRecorder`)
    appends the timings to the run-metric files and writes and logs the error reports.
    """

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        """``runs`` runs of ``algorithm`` took ``seconds`` each (only with ``ENABLE_ALGORITHM_RUN_METRICS``)."""

    def failed(self, algorithm: str, metric_name: str, error: BaseException) -> None:
        """``algorithm`` raised ``error`` on ``metric_name``; its vote is None."""


@dataclass(slots=True)  # not frozen, for the cost of building one per metric: see Series
class Verdict:
    """``(anomalous, ensemble, datapoint)`` as ``run_selected_algorithm`` returned it."""

    anomalous: bool
    ensemble: list[Vote]
    datapoint: Number | None

    def triggered(self, algorithms: list[str]) -> list[str]:
        """Names of the algorithms that voted True (index ``k`` maps to ``ALGORITHMS[k]``)."""
        return [name for name, vote in zip(algorithms, self.ensemble, strict=False) if vote]


def is_boring(values: np.ndarray, max_boredom: int, boredom_set_size: int) -> bool:
    """Exactly ``boredom_set_size`` distinct values among the last ``max_boredom`` (an equality test)."""
    return int(np.unique(values[-max_boredom:]).shape[0]) == boredom_set_size


def check_filters(series: Series, settings: Settings, now: float) -> None:
    """Raise TooShort, Stale or Boring, in that order, when the series is not to be analysed."""
    if len(series) < settings.MIN_TOLERABLE_LENGTH:
        raise TooShort()
    if now - series.last_timestamp > settings.STALE_PERIOD:
        raise Stale()
    if is_boring(series.values, settings.MAX_TOLERABLE_BOREDOM, settings.BOREDOM_SET_SIZE):
        raise Boring()


def early_exit_enabled(settings: Settings) -> bool:
    return settings.RUN_OPTIMIZED_WORKFLOW and not settings.ENABLE_ALL_ALGORITHMS_RUN_METRICS


def run_ensemble(
    series: Series,
    settings: Settings,
    now: float,
    metric_name: str,
    recorder: Recorder | None = None,
) -> list[Vote]:
    """Run ``settings.ALGORITHMS`` in order with the early exit; one vote per algorithm."""
    return ensemble_of(lambda name: run_algorithm(name, series, settings, now, metric_name, recorder), settings)


def ensemble_of(vote: Callable[[str], Vote], settings: Settings) -> list[Vote]:
    """``vote(name)`` for each of ``settings.ALGORITHMS`` in order, with the early exit: once
    ``N - CONSENSUS + 1`` votes are False the rest are recorded False without being asked for. The test
    follows each vote, so the first algorithm is always asked (even when ``CONSENSUS`` exceeds ``N``)."""
    algorithms = settings.ALGORITHMS
    max_false = len(algorithms) - settings.CONSENSUS + 1
    early_exit = early_exit_enabled(settings)
    ensemble: list[Vote] = []
    falses = 0
    consensus_possible = True
    for name in algorithms:
        one: Vote = False
        if consensus_possible:
            one = vote(name)
        ensemble.append(one)
        falses += one is False
        if early_exit and falses >= max_false:
            consensus_possible = False
    return ensemble


def run_algorithm(
    name: str, series: Series, settings: Settings, now: float, metric_name: str, recorder: Recorder | None,
    *, timed: bool = True,
) -> Vote:
    """One algorithm's vote: True/False, or None when it raised (the traceback goes to ``recorder``).

    With ``timed`` and ``ENABLE_ALGORITHM_RUN_METRICS`` its run time goes to ``recorder`` too.
    """
    started = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            vote: Vote = bool(
                DETECTORS[name](series.timestamps, series.values, now=now, full_duration=settings.FULL_DURATION)
            )
    except Exception as exc:
        if recorder is not None:
            recorder.failed(name, metric_name, exc)
        vote = None
    if recorder is not None and timed and settings.ENABLE_ALGORITHM_RUN_METRICS:
        recorder.record(name, time.perf_counter() - started)
    return vote


def run_selected_algorithm(
    series: Series,
    metric_name: str,
    settings: Settings,
    *,
    now: float | None = None,
    recorder: Recorder | None = None,
) -> Verdict:
    """The consensus verdict on one series, or TooShort / Stale / Boring raised.

    ``metric_name`` is the full key (for error reports). ``now`` defaults to the wall clock. The
    second-order check, which needs the metric's history in Redis, is the caller's
    (:mod:`skyline_analyzer.analyzer.history`).
    """
    now = time.time() if now is None else now
    check_filters(series, settings, now)
    return consensus(run_ensemble(series, settings, now, metric_name, recorder), series, settings)


def consensus(ensemble: list[Vote], series: Series, settings: Settings) -> Verdict:
    """Anomalous when at most ``N - CONSENSUS`` votes are False (a None is not a False)."""
    anomalous = ensemble.count(False) <= len(settings.ALGORITHMS) - settings.CONSENSUS
    return Verdict(anomalous, ensemble, series.last_value)


#: Length of the start-up self-test series: one point a second over a day, inclusive.
SELF_TEST_POINTS = 86401


def algorithm_self_test(settings: Settings, now: float | None = None) -> None:
    """Run every configured algorithm on a flat day of data; raise if any of them raises.

    This is the agent's start-up check (docs/algorithms.md#start-up-self-test): a series of 86401 points ``[t, 1]``
    ending at ``int(now)``. Unknown names are caught earlier by settings validation.
    """
    end = int(time.time() if now is None else now)
    timestamps = np.arange(end - SELF_TEST_POINTS + 1, end + 1, dtype=np.float64)
    values = np.ones(SELF_TEST_POINTS)
    with np.errstate(all="ignore"):
        for name in settings.ALGORITHMS:
            DETECTORS[name](timestamps, values, now=float(end), full_duration=settings.FULL_DURATION)
