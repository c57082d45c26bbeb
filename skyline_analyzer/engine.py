"""The analysis entry point for workers: verdicts for a batch of decoded series.

Workers hand a batch here rather than calling the verdict per series, so that a batched evaluation can
serve the same call. The per-series reference path is :func:`skyline_analyzer.verdict.run_selected_algorithm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skyline_analyzer.config import Settings
from skyline_analyzer.exceptions import SeriesException
from skyline_analyzer.series import Series
from skyline_analyzer.tmpfiles import RunMetricsRecorder
from skyline_analyzer.verdict import Verdict, run_selected_algorithm


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
    """The outcome of every series (``names`` are full keys), in order."""
    outcomes = []
    for one, name in zip(series, names, strict=True):
        try:
            verdict = run_selected_algorithm(one, name, settings, now=now, redis=redis, recorder=recorder)
        except SeriesException as exc:
            outcomes.append(Outcome(name, exception=type(exc).__name__))
        else:
            outcomes.append(Outcome(name, verdict=verdict))
    return outcomes
