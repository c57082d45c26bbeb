"""The analysis entry point: verdicts for a batch of decoded series.

Callers hand a batch here rather than asking for a verdict per series, so that the batched evaluation
(:mod:`skyline_analyzer.detection.batch`) can serve the call. ``settings.ANALYZER_ENGINE`` chooses it:

* ``'fast'`` (default): filters and ensembles evaluated over blocks of equal-length series, vectorised;
* ``'reference'``: :func:`skyline_analyzer.detection.reference.run_selected_algorithm` per series, the
  oracle the fast engine is tested against (same exception, verdict and ensemble for every series).

The verdict here is the consensus; the Redis side of a verdict (stale-digest candidates, the second-order
check) is the Analyzer's (:mod:`skyline_analyzer.analyzer.history`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from skyline_analyzer.config import Settings
from skyline_analyzer.defaults import ENGINES
from skyline_analyzer.detection import batch
from skyline_analyzer.detection.reference import Recorder, Verdict, run_selected_algorithm
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import ExceptionKind, SeriesException, SettingsError


@dataclass(slots=True)  # not frozen, for the cost of building one per metric: see Series
class Outcome:
    """One series' result: a verdict, or the kind of exception that filtered it out."""

    name: str
    verdict: Verdict | None = None
    exception: ExceptionKind | None = None


def analyse(
    series: Sequence[Series],
    names: Sequence[str],
    settings: Settings,
    now: float,
    *,
    recorder: Recorder | None = None,
    deferred: Counter[str] | None = None,
) -> list[Outcome]:
    """The outcome of every series (``names`` are full keys), in order, by ``settings.ANALYZER_ENGINE``.

    ``recorder`` receives the algorithms' run times and errors; ``deferred``, when given, counts per
    algorithm the rows the fast engine left to the reference detector (the benchmarks report it).
    """
    if len(series) != len(names):
        raise ValueError(f"{len(series)} series but {len(names)} names")
    engine = settings.ANALYZER_ENGINE
    if engine == "reference":
        return _analyse_reference(series, names, settings, now, recorder)
    if engine == "fast":
        return _analyse_fast(series, names, settings, now, recorder, deferred)
    raise SettingsError([f"ANALYZER_ENGINE must be one of {ENGINES}, got {engine!r:.40}"])


def preload(settings: Settings) -> None:
    """Import now what the configured algorithms would otherwise import on their first call.

    ``ks_test``'s ADF step needs statsmodels (about a second to import). The Analyzer calls this in the
    parent when it is made, before it tells systemd it is ready and before it forks any worker, so that each
    fresh worker inherits the modules instead of importing them again on its first ``ks_test``, every run.
    Idempotent; loading settings never calls it.
    """
    if "ks_test" in settings.ALGORITHMS:
        import statsmodels.tsa.stattools  # noqa: F401


def _analyse_reference(
    series: Sequence[Series], names: Sequence[str], settings: Settings, now: float, recorder: Recorder | None,
) -> list[Outcome]:
    outcomes = []
    for one, name in zip(series, names, strict=True):
        try:
            verdict = run_selected_algorithm(one, name, settings, now=now, recorder=recorder)
        except SeriesException as exc:
            outcomes.append(Outcome(name, exception=exc.kind))
        else:
            outcomes.append(Outcome(name, verdict=verdict))
    return outcomes


def _analyse_fast(
    series: Sequence[Series], names: Sequence[str], settings: Settings, now: float, recorder: Recorder | None,
    deferred: Counter[str] | None,
) -> list[Outcome]:
    results = batch.evaluate(series, names, settings, now, recorder=recorder, deferred=deferred)
    return [
        Outcome(name, verdict=result) if isinstance(result, Verdict) else Outcome(name, exception=result)
        for name, result in zip(names, results, strict=True)
    ]
