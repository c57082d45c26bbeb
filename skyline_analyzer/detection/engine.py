"""The analysis entry point for workers: verdicts for a batch of decoded series.

Workers hand a batch here rather than calling the verdict per series, so that the batched evaluation
(:mod:`skyline_analyzer.detection.batch`) can serve the call. ``settings.ANALYZER_ENGINE`` chooses it:

* ``'fast'`` (default): filters and ensembles evaluated over blocks of equal-length series, vectorised;
* ``'reference'``: :func:`skyline_analyzer.detection.reference.run_selected_algorithm` per series, the oracle the
  fast engine is tested against (same exception, verdict and ensemble for every series).

Both keep the Redis side of the verdict in :mod:`skyline_analyzer.detection.reference`: the stale-digest SADD for
every series, and the second-order check for the (few) series that reach consensus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import batch
from skyline_analyzer.detection.reference import Verdict, conclude, record_stale_candidate, run_selected_algorithm
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesException, SettingsError

#: The values ``ANALYZER_ENGINE`` accepts.
ENGINES = ("fast", "reference")


@dataclass(frozen=True)
class Outcome:
    """One series' result: a verdict, or the name of the exception that filtered it out."""

    name: str
    verdict: Verdict | None = None
    exception: str | None = None


def analyse(
    series: Sequence[Series],
    names: Sequence[str],
    settings: Settings,
    now: float,
    *,
    redis: Any = None,
    recorder: RunMetricsRecorder | None = None,
) -> list[Outcome]:
    """The outcome of every series (``names`` are full keys), in order, by ``settings.ANALYZER_ENGINE``."""
    if len(series) != len(names):
        raise ValueError(f"{len(series)} series but {len(names)} names")
    engine = settings.ANALYZER_ENGINE
    if engine == "reference":
        return _analyse_reference(series, names, settings, now, redis, recorder)
    if engine == "fast":
        return _analyse_fast(series, names, settings, now, redis, recorder)
    raise SettingsError([f"ANALYZER_ENGINE must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}"])


def _analyse_reference(
    series: Sequence[Series], names: Sequence[str], settings: Settings, now: float, redis: Any,
    recorder: RunMetricsRecorder | None,
) -> list[Outcome]:
    outcomes = []
    for one, name in zip(series, names, strict=True):
        try:
            verdict = run_selected_algorithm(one, name, settings, now=now, redis=redis, recorder=recorder)
        except SeriesException as exc:
            outcomes.append(Outcome(name, exception=type(exc).__name__))
        else:
            outcomes.append(Outcome(name, verdict=verdict))
    return outcomes


def _analyse_fast(
    series: Sequence[Series], names: Sequence[str], settings: Settings, now: float, redis: Any,
    recorder: RunMetricsRecorder | None,
) -> list[Outcome]:
    if settings.ALERT_ON_STALE_METRICS and redis is not None:
        for one, name in zip(series, names, strict=True):
            record_stale_candidate(redis, settings, name, one, now)
    if not settings.ENABLE_ALGORITHM_RUN_METRICS:
        recorder = None
    results = batch.evaluate(series, names, settings, now, recorder=recorder)
    threshold = len(settings.ALGORITHMS) - settings.CONSENSUS
    second_order = settings.ENABLE_SECOND_ORDER
    outcomes = []
    for one, name, result in zip(series, names, results, strict=True):
        if result.exception is not None:
            outcomes.append(Outcome(name, exception=result.exception))
        elif second_order:
            outcomes.append(Outcome(name, verdict=conclude(result.ensemble, one, name, settings, now, redis)))
        else:
            # conclude() without the second-order branch, inlined: this loop runs once per series.
            anomalous = result.ensemble.count(False) <= threshold
            outcomes.append(Outcome(name, verdict=Verdict(anomalous, result.ensemble, one.last_value)))
    return outcomes
