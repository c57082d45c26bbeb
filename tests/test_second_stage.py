"""The second stage's decision on hand-made daily series (docs/second-stage.md)."""

from __future__ import annotations

import math

import numpy as np

from skyline_analyzer.detection import second_stage

STEP = 300


def daily(days: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Five-minute points over ``days`` days: a daily peak at noon on noise."""
    timestamps = np.arange(0, days * 86400, STEP, dtype=np.float64)
    phase = (timestamps % 86400) / 86400
    noise = np.random.default_rng(seed).normal(0, 1, timestamps.shape[0])
    return timestamps, 10 + 50 * np.exp(-((phase - 0.5) ** 2) / 0.002) + noise


def test_the_daily_peak_is_dropped_as_seasonal() -> None:
    timestamps, values = daily(8)
    noon = int(np.flatnonzero(timestamps == 7 * 86400 + 43200)[0]) + 1
    decision = second_stage.recheck(timestamps[:noon], values[:noon])
    assert not decision.anomalous
    assert decision.check == "seasonal_robust_z"
    assert decision.statistic is not None and decision.statistic <= decision.threshold == 3.5
    assert decision.reason.startswith("dropped")


def test_a_peak_at_an_unusual_hour_is_kept() -> None:
    timestamps, values = daily(8)
    values = values.copy()
    values[-3:] = 60.0
    decision = second_stage.recheck(timestamps, values)
    assert decision.anomalous
    assert decision.statistic is not None and decision.statistic > 3.5
    assert decision.neighbours > 0


def test_too_little_history_keeps_the_first_stage_verdict_and_says_why() -> None:
    timestamps, values = daily(2)
    decision = second_stage.recheck(timestamps, values)
    assert decision.anomalous and decision.statistic is None
    assert "3 needed" in decision.reason


def test_flat_neighbours_and_a_differing_tail_give_an_infinite_statistic() -> None:
    timestamps = np.arange(0, 5 * 86400, STEP, dtype=np.float64)
    values = np.ones(timestamps.shape[0])
    values[-1] = 2.0
    decision = second_stage.recheck(timestamps, values)
    assert decision.anomalous and decision.statistic is not None and math.isinf(decision.statistic)
