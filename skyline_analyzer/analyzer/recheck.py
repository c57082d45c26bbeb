"""The worker's side of the second stage (docs/second-stage.md): candidates, their longer history, decisions.

With ``SECOND_STAGE_ENABLED`` False nothing here changes a run: :func:`apply` returns the first stage's
anomalies. With it on, the first stage runs exactly as without it (the same algorithms, the same early exit
at ``CONSENSUS``); its verdicts give the *candidates*: the anomalies, and the metrics *nearly flagged*, with
at least ``SECOND_STAGE_MIN_VOTES`` votes among the algorithms the early exit let run but short of
``CONSENSUS``. Each is judged on its downsampled copy (``second_stage.<full key>``, kept by
:mod:`skyline_analyzer.horizon.long_history`) by :func:`skyline_analyzer.detection.second_stage.judge`, and
reported only if anomalous there. Where the stage cannot judge (no copy, too few earlier days) the first
stage's verdict stands: a flagged metric is reported, a nearly flagged one is not. Each decision is logged
and carried by the anomaly. The stage's cost is its work on the candidates only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import redis

from skyline_analyzer import codec, keys
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import second_stage
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)


def near_miss_falses(settings: Settings) -> range:
    """The counts of False in a verdict's ensemble that make it nearly flagged: short of ``CONSENSUS`` with at
    least ``SECOND_STAGE_MIN_VOTES`` votes; empty with the stage off. The algorithms the early exit skipped
    count as False, as in the verdict: the votes are those of the algorithms that ran, so finding these
    metrics costs the first stage nothing. A range, so that the worker's test of each verdict is one ``in``."""
    if not settings.SECOND_STAGE_ENABLED:
        return range(0)
    count = len(settings.ALGORITHMS)
    return range(count - settings.CONSENSUS + 1, count - settings.SECOND_STAGE_MIN_VOTES + 1)


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
    judged = list(zip(candidates, _candidates(full, copies, series, candidates), strict=True))
    decisions = iter(_judge([c for _, c in judged if c is not None], parameters, settings, now))
    reported = []
    for (anomaly, flagged), candidate in judged:
        decision = next(decisions) if candidate is not None else None
        if decision is None:
            if flagged:
                reported.append(anomaly)
                log.info("second stage :: %s not judged (no usable longer history): first stage verdict stands",
                         escape(anomaly.base_name))
            continue
        if decision.anomalous:
            reported.append(replace(anomaly, second_stage=decision.as_dict()))
        # A nearly flagged metric left unreported is the first stage's verdict unchanged; on some metrics one
        # algorithm votes often (first_hour_average on a trend), so those lines would outnumber the rest.
        if flagged or decision.anomalous:
            log.info("second stage :: %s %s by %s: %s", escape(anomaly.base_name),
                     "reported" if decision.anomalous else "not reported", decision.check, decision.reason)
    return reported


def _candidates(full: list[str], copies: list[bytes | None], series: dict[str, Series],
                candidates: Sequence[tuple[Anomaly, bool]]) -> list[second_stage.Candidate | None]:
    """Each candidate with its decoded copy (decoded together); ``None`` without a copy or with one that
    does not decode (logged, bounded)."""
    present = [i for i, raw in enumerate(copies) if raw]
    decoded = codec.decode_many([copies[i] for i in present],  # type: ignore[misc]
                                [keys.second_stage_history(full[i]) for i in present])
    found: list[second_stage.Candidate | None] = [None] * len(full)
    for i, copy in zip(present, decoded, strict=True):
        if isinstance(copy, SeriesFormatError):
            log.error("error :: second stage: %s", escape(str(copy)))
            continue
        recent = series[full[i]]
        found[i] = second_stage.Candidate(full[i], (copy.timestamps, copy.values),
                                          (recent.timestamps, recent.values), candidates[i][1])
    return found


def _judge(candidates: list[second_stage.Candidate], parameters: second_stage.Parameters, settings: Settings,
           now: float) -> list[second_stage.Decision | None]:
    """The decisions for a batch; if the batch fails, each candidate alone (a failure is not judged)."""
    try:
        return second_stage.judge(candidates, parameters, settings, now)
    except Exception:
        log.error("error :: second stage: judging %d candidates failed; judging them one by one", len(candidates),
                  exc_info=True)
    decisions: list[second_stage.Decision | None] = []
    for candidate in candidates:
        try:
            decisions.extend(second_stage.judge([candidate], parameters, settings, now))
        except Exception as exc:
            # A copy is input like any Redis value: one that breaks a check leaves the first stage's verdict.
            log.error("error :: second stage: %s not judged: %s", escape(candidate.name), escape(repr(exc)))
            decisions.append(None)
    return decisions
