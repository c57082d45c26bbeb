"""The worker's side of the second stage (docs/second-stage.md): candidates, their longer history, decisions.

With ``SECOND_STAGE_ENABLED`` False nothing here changes a run: :func:`first_stage` is
:func:`skyline_analyzer.detection.engine.analyse` and :func:`apply` returns the first stage's anomalies.

With it on, the first stage runs with its early exit at ``SECOND_STAGE_MIN_VOTES`` instead of
``CONSENSUS``, so that the ensembles of the metrics it nearly flagged are complete; each verdict is then
taken at ``CONSENSUS`` again, from the same ensemble (the early exit only ever skips algorithms once a
consensus is impossible, so the faithful verdict set is the same). The *candidates* are the first stage's
anomalies and the metrics with at least ``SECOND_STAGE_MIN_VOTES`` votes. Each is judged on its
downsampled copy (``second_stage.<full key>``, kept by :mod:`skyline_analyzer.horizon.long_history`): a
flagged metric by :func:`~skyline_analyzer.detection.second_stage.recheck` (is it unusual for the time of
day?), a nearly flagged one by :func:`~skyline_analyzer.detection.second_stage.reanalyse` (does the
ensemble reach ``CONSENSUS`` on the longer history once the daily profile is removed?), and reported only
if anomalous there. Where the stage cannot judge (no copy, too few earlier days) the first stage's verdict
stands: a flagged metric is reported, a nearly flagged one is not. Each decision is logged and carried by
the anomaly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import redis

from skyline_analyzer import codec, keys
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine, second_stage
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.detection.reference import Recorder, Verdict, consensus
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)


def first_stage(series: Sequence[Series], names: Sequence[str], settings: Settings, now: float,
                recorder: Recorder | None) -> list[engine.Outcome]:
    """The first stage's outcomes; with the stage on, ensembles complete down to ``SECOND_STAGE_MIN_VOTES``."""
    if not settings.SECOND_STAGE_ENABLED or settings.SECOND_STAGE_MIN_VOTES >= settings.CONSENSUS:
        return engine.analyse(series, names, settings, now, recorder=recorder)
    wide = settings.replace(CONSENSUS=settings.SECOND_STAGE_MIN_VOTES)
    outcomes = engine.analyse(series, names, wide, now, recorder=recorder)
    return [
        engine.Outcome(o.name, verdict=consensus(o.verdict.ensemble, one, settings)) if o.verdict is not None else o
        for o, one in zip(outcomes, series, strict=True)
    ]


def nearly_flagged(verdict: Verdict, settings: Settings) -> bool:
    """A verdict short of ``CONSENSUS`` with at least ``SECOND_STAGE_MIN_VOTES`` (never with the stage off)."""
    if not settings.SECOND_STAGE_ENABLED:
        return False
    falses = verdict.ensemble.count(False)
    count = len(settings.ALGORITHMS)
    return count - settings.CONSENSUS < falses <= count - settings.SECOND_STAGE_MIN_VOTES


def apply(conn: Any, settings: Settings, candidates: Sequence[tuple[Anomaly, bool]],
          series: dict[str, Series], now: float) -> list[Anomaly]:
    """The anomalies to report among ``(anomaly, flagged by the first stage)``; ``series`` by full key,
    ``now`` the run's time (the re-analysis filters stale series as the first stage does)."""
    if not settings.SECOND_STAGE_ENABLED or not candidates:
        return [a for a, flagged in candidates if flagged]
    parameters = second_stage.Parameters.from_settings(settings)
    full = [keys.metric(settings.FULL_NAMESPACE, a.base_name) for a, _ in candidates]
    try:
        copies = conn.mget([keys.second_stage_history(name) for name in full])
    except (redis.RedisError, OSError) as exc:
        log.error("error :: second stage: could not read the longer histories, first stage verdicts stand: %s", exc)
        return [a for a, flagged in candidates if flagged]
    reported = []
    for (anomaly, flagged), name, raw in zip(candidates, full, copies, strict=True):
        decision = _decide(name, raw, series[name], flagged, parameters, settings, now)
        shown = escape(anomaly.base_name)
        if decision is None:
            if flagged:
                reported.append(anomaly)
            log.info("second stage :: %s not judged (no usable longer history): first stage verdict %s stands",
                     shown, flagged)
            continue
        log.info("second stage :: %s %s by %s: %s", shown, "reported" if decision.anomalous else "not reported",
                 decision.check, decision.reason)
        if decision.anomalous:
            reported.append(replace(anomaly, second_stage=decision.as_dict()))
    return reported


def _decide(name: str, raw: bytes | None, recent: Series, flagged: bool, parameters: second_stage.Parameters,
            settings: Settings, now: float) -> second_stage.Decision | None:
    if not raw:
        return None
    try:
        copy = codec.decode_fast(raw, keys.second_stage_history(name))
    except SeriesFormatError as exc:
        log.error("error :: second stage: %s", escape(str(exc)))
        return None
    history, latest = (copy.timestamps, copy.values), (recent.timestamps, recent.values)
    try:
        if flagged:
            return second_stage.recheck(history, latest, parameters)
        return second_stage.reanalyse(history, latest, parameters, settings, now, name)
    except Exception as exc:
        # A copy is input like any Redis value: one that breaks a check leaves the first stage's verdict.
        log.error("error :: second stage: %s not judged: %s", escape(name), escape(repr(exc)))
        return None
