"""What ``tune`` reports: rates, costs, the cheapest ``ALGORITHMS`` order (docs/analyzer-optimizations.md#tune).

From the records of :mod:`skyline_analyzer.analyzer.tune_history`:

* per algorithm, the runs, the share of its runs that voted True (``triggered``), the shares of the
  sampled series on which it votes True, None and False (the sample's vectors are complete, so these do
  not depend on where the algorithm sits in the order), and its mean cost per run (the seconds the engine
  measured over the runs it timed);
* the expected ensemble cost per analysed series of the current order and of the cheapest order
  (:mod:`skyline_analyzer.detection.ordering`, exact), their difference per series and per run, and the
  cost the engine actually measured per analysed series, as a check on the model;
* what recording cost the workers (seconds per run, and as a share of the ensemble time).

An algorithm the records never timed (it never ran, or ``ENABLE_ALGORITHM_RUN_METRICS`` was off) is
given the largest measured cost and listed under ``unmeasured``; with no timing at all there is no order
to recommend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skyline_analyzer.analyzer.tune_history import History
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import ordering
from skyline_analyzer.detection.reference import early_exit_enabled


def _ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom else None


def _sample(history: History, algorithms: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every sampled vector in the settings' column order as vote codes, its False mask and its weight.

    A record's vectors stand for the series its worker analysed: each weighs ``analysed / len(sample)``.
    """
    rows, weights = [], []
    for record in history.records:
        if not record.sample:
            continue
        columns = [record.algorithms.index(name) for name in algorithms]
        rows.extend("".join(vector[c] for c in columns) for vector in record.sample)
        weights.extend([record.analysed / len(record.sample)] * len(record.sample))
    codes = np.array([list(row) for row in rows], dtype="<U1").reshape(len(rows), len(algorithms))
    bits = (1 << np.arange(len(algorithms), dtype=np.int64))
    masks = ((codes == "F") * bits).sum(axis=1).astype(np.int64)
    return codes, masks, np.array(weights, dtype=np.float64)


def _totals(history: History, algorithms: Sequence[str], field: str) -> list[float]:
    totals = [0.0] * len(algorithms)
    for record in history.records:
        values = getattr(record, field)
        for column, name in enumerate(algorithms):
            totals[column] += values[record.algorithms.index(name)]
    return totals


def build(history: History, settings: Settings) -> dict[str, Any]:
    """The report as plain data (``tune --json`` prints it as it is)."""
    algorithms = list(settings.ALGORITHMS)
    runs, true, none = (_totals(history, algorithms, f) for f in ("runs", "true", "none"))
    timed, seconds = _totals(history, algorithms, "timed_runs"), _totals(history, algorithms, "seconds")
    codes, masks, weights = _sample(history, algorithms)
    total_weight = float(weights.sum())
    run_ids = {record.run for record in history.records}
    analysed = sum(record.analysed for record in history.records)
    measured = [_ratio(s, t) for s, t in zip(seconds, timed, strict=True)]
    known = [cost for cost in measured if cost is not None]
    report: dict[str, Any] = {
        "runs": len(run_ids), "records": len(history.records), "read": history.read,
        "skipped": dict(history.skipped), "other_algorithms": history.other_algorithms,
        "first_run": min(run_ids, default=None), "last_run": max(run_ids, default=None),
        "engines": sorted({record.engine for record in history.records}),
        "consensus": settings.CONSENSUS, "early_exit": early_exit_enabled(settings),
        "analysed": analysed, "analysed_per_run": _ratio(analysed, len(run_ids)), "sampled": int(codes.shape[0]),
        "algorithms": [
            {"name": name, "runs": int(runs[i]), "triggered": _ratio(true[i], runs[i]),
             "errors": _ratio(none[i], runs[i]), "cost": measured[i],
             "sample_true": _share(codes[:, i] == "T", weights, total_weight),
             "sample_none": _share(codes[:, i] == "N", weights, total_weight),
             "sample_false": _share(codes[:, i] == "F", weights, total_weight)}
            for i, name in enumerate(algorithms)
        ],
        "unmeasured": [name for name, cost in zip(algorithms, measured, strict=True) if cost is None and known],
        "measured_per_series": _ratio(sum(seconds), analysed) if all(t > 0 for t in timed) else None,
        "recording_per_run": _ratio(sum(record.record_seconds for record in history.records), len(run_ids)),
        "recording_share": _ratio(sum(record.record_seconds for record in history.records), sum(seconds)),
        "current": {"order": algorithms, "cost": None}, "best": None, "saving": None,
    }
    if not known or not total_weight:
        return report
    costs = [cost if cost is not None else max(known) for cost in measured]
    max_false = len(algorithms) - settings.CONSENSUS + 1 if report["early_exit"] else None
    alive = ordering.alive_table(masks, weights, len(algorithms), max_false)
    current = ordering.expected_cost(range(len(algorithms)), costs, alive)
    order, best = ordering.best_order(costs, alive)
    saving = current - best
    report["current"]["cost"] = current
    report["best"] = {"order": [algorithms[i] for i in order], "cost": best}
    report["saving"] = {"per_series": saving, "share": _ratio(saving, current),
                        "per_run": saving * report["analysed_per_run"]}
    return report


def _share(chosen: np.ndarray, weights: np.ndarray, total: float) -> float | None:
    return float(weights[chosen].sum()) / total if total else None
