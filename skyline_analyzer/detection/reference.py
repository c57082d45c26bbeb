"""The consensus verdict: ``run_selected_algorithm`` of Skyline v1.2.8 (docs/algorithms.md#the-verdict).

The filters run in order (stale-alert bookkeeping, TooShort, Stale, Boring); then the ``ALGORITHMS`` run
in the configured order, each result recorded in the ensemble as True, False or None (the algorithm
raised). With ``RUN_OPTIMIZED_WORKFLOW`` the loop stops running algorithms once ``N - CONSENSUS + 1``
Falses make consensus impossible; the skipped ones are recorded as False, so the verdict never changes.
A series is anomalous when ``ensemble.count(False) <= N - CONSENSUS``: a None is *not* a False, so an
erroring algorithm votes "anomalous" (docs/departures.md#a1: preserved and logged).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from skyline_analyzer import keys
from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder, record_algorithm_error
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.algorithms import DETECTORS, SECOND_ORDER_REPEAT_WINDOW, interval_is_anomalous
from skyline_analyzer.detection.series import Number, Series
from skyline_analyzer.exceptions import Boring, Stale, TooShort

log = logging.getLogger(__name__)

Vote = bool | None


@dataclass(frozen=True)
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


def record_stale_candidate(redis: Any, settings: Settings, metric_name: str, series: Series, now: float) -> None:
    """SADD the full key to the stale-digest set when its age is in [ALERT_ON_STALE_PERIOD, STALE_PERIOD)."""
    if series.last_timestamp is None:
        return
    age = int(now) - int(series.last_timestamp)
    if settings.ALERT_ON_STALE_PERIOD <= age < settings.STALE_PERIOD:
        try:
            redis.sadd(keys.ALERT_ON_STALE_METRICS, metric_name)
        except Exception:
            # The original ignored this failure too: the digest is best effort, the verdict is not.
            log.warning("could not add %s to %s", metric_name, keys.ALERT_ON_STALE_METRICS, exc_info=True)


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
    recorder: RunMetricsRecorder | None = None,
) -> list[Vote]:
    """Run ``settings.ALGORITHMS`` in order with the early exit; one vote per algorithm."""
    algorithms = settings.ALGORITHMS
    max_false = len(algorithms) - settings.CONSENSUS + 1
    early_exit = early_exit_enabled(settings)
    ensemble: list[Vote] = []
    falses = 0
    consensus_possible = True
    for name in algorithms:
        vote: Vote = False
        if consensus_possible:
            vote = run_algorithm(name, series, settings, now, metric_name, recorder)
        ensemble.append(vote)
        falses += vote is False
        if early_exit and falses >= max_false:
            consensus_possible = False
    return ensemble


def run_algorithm(
    name: str, series: Series, settings: Settings, now: float, metric_name: str, recorder: RunMetricsRecorder | None
) -> Vote:
    """One algorithm's vote: True/False, or None when it raised (traceback recorded and logged); timed."""
    started = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            vote: Vote = bool(
                DETECTORS[name](series.timestamps, series.values, now=now, full_duration=settings.FULL_DURATION)
            )
    except Exception:
        text = traceback.format_exc()
        record_algorithm_error(Path(settings.SKYLINE_TMP_DIR), name, text)
        log.error("error :: algorithm %s raised on %s; its vote is None (counts towards anomalous)\n%s",
                  name, metric_name, text)
        vote = None
    if recorder is not None:
        recorder.record(name, time.perf_counter() - started)
    return vote


def is_anomalously_anomalous(redis: Any, metric_name: str, datapoint: Number, now: float) -> bool:
    """Second-order check on the metric's ``trigger_history.<full key>`` (docs/algorithms.md#second-order).

    First trigger: store ``[(now, datapoint)]`` and return True. The same datapoint again within 300 s:
    False, history untouched. Otherwise append ``[now, datapoint]`` (the history never expires, as in
    v1.2.8) and test the latest interval between triggers
    (:func:`skyline_analyzer.detection.algorithms.interval_is_anomalous`).
    """
    key = keys.trigger_history(metric_name)
    raw = redis.get(key)
    if raw is None:
        redis.set(key, msgpack.packb([(now, datapoint)]))
        return True
    history = msgpack.unpackb(raw)
    last_time, last_datapoint = history[-1]
    if datapoint == last_datapoint and now - last_time <= SECOND_ORDER_REPEAT_WINDOW:
        return False
    history.append([now, datapoint])
    redis.set(key, msgpack.packb(history))
    return interval_is_anomalous([entry[0] for entry in history])


def run_selected_algorithm(
    series: Series,
    metric_name: str,
    settings: Settings,
    *,
    now: float | None = None,
    redis: Any = None,
    recorder: RunMetricsRecorder | None = None,
) -> Verdict:
    """The verdict on one series, or TooShort / Stale / Boring.

    ``metric_name`` is the full key. ``now`` defaults to the wall clock. ``redis`` is needed for the
    stale-digest bookkeeping (skipped without it) and for ``ENABLE_SECOND_ORDER`` (required then).
    ``recorder`` receives the run time of every algorithm actually run when ``ENABLE_ALGORITHM_RUN_METRICS``.
    """
    now = time.time() if now is None else now
    if settings.ALERT_ON_STALE_METRICS and redis is not None:
        record_stale_candidate(redis, settings, metric_name, series, now)
    check_filters(series, settings, now)
    if not settings.ENABLE_ALGORITHM_RUN_METRICS:
        recorder = None
    ensemble = run_ensemble(series, settings, now, metric_name, recorder)
    return conclude(ensemble, series, metric_name, settings, now, redis)


def conclude(ensemble: list[Vote], series: Series, metric_name: str, settings: Settings, now: float,
             redis: Any) -> Verdict:
    """The verdict from a complete ensemble: consensus, then the second-order check when enabled."""
    datapoint = series.last_value
    if ensemble.count(False) > len(settings.ALGORITHMS) - settings.CONSENSUS:
        return Verdict(False, ensemble, datapoint)
    if not settings.ENABLE_SECOND_ORDER:
        return Verdict(True, ensemble, datapoint)
    try:
        anomalous = is_anomalously_anomalous(redis, metric_name, datapoint, now)
    except Exception:
        # v1.2.8's catch-all around the final block: log and return (False, [], 1).
        log.error("error :: Algorithm error: second-order check failed for %s\n%s", metric_name,
                  traceback.format_exc())
        return Verdict(False, [], 1)
    return Verdict(anomalous, ensemble, datapoint)


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
