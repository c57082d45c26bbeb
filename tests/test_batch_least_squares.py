"""The batched ``least_squares`` defers to ``lstsq`` only where its vote could differ from the reference's."""

from __future__ import annotations

import numpy as np

from skyline_analyzer.detection import algorithms, batched
from skyline_analyzer.detection.batched import DEFER, FALSE, TRUE, Block
from skyline_analyzer.detection.series import Series

NOW = 1_700_000_000.0


def block_of(rows: list[np.ndarray]) -> Block:
    series = [Series(TIMESTAMPS.copy(), values, NOW, float(values[-1])) for values in rows]
    return Block(series, [f"metrics.m{k}" for k in range(len(rows))], np.stack([s.timestamps for s in series]),
                 np.stack([s.values for s in series]), NOW, 86400)


TIMESTAMPS = NOW - 60.0 * np.arange(1439, -1, -1)


def residuals(values: np.ndarray) -> np.ndarray:
    design = np.stack([TIMESTAMPS - TIMESTAMPS.mean(), np.ones(TIMESTAMPS.shape[0])], axis=1)
    return values - design @ np.linalg.lstsq(design, values, rcond=None)[0]


def with_tau(level: float, sigma: float, seed: int, tau: float) -> np.ndarray:
    """1,440 points of noise around ``level`` whose last three residuals average ``tau`` (to ~1e-9)."""
    values = level + np.random.default_rng(seed).normal(0.0, sigma, TIMESTAMPS.shape[0])
    for _ in range(50):
        gap = tau - residuals(values)[-3:].mean()
        if abs(gap) < 1e-9:
            break
        values[-3:] += gap
    return values


def test_a_clearly_false_test_settles_the_vote_whatever_the_rounding_margins() -> None:
    # tau at 0.5, where round(tau) turns (the rounding test is within its margin), but far below 3 std:
    # False whichever way that test goes, so decided here, not left to lstsq.
    at_rounding = [with_tau(10.0, 3.0, seed, 0.5) for seed in range(5)]
    # tau far above 3 std, std and tau far from 0.5: True, decided.
    spikes = [with_tau(10.0, 1.0, seed, 50.0) for seed in range(5, 10)]
    block = block_of(at_rounding + spikes)
    codes = batched.least_squares(block, np.arange(10))
    assert codes.tolist() == [FALSE] * 5 + [TRUE] * 5
    for one, code in zip(block.series, codes.tolist(), strict=True):
        assert algorithms.least_squares(one.timestamps, one.values, now=NOW, full_duration=86400) == (code == TRUE)


def test_a_vote_within_the_margin_of_the_main_test_is_still_deferred() -> None:
    # tau within a hair of 3 std: only lstsq's own arithmetic can say which side it falls.
    values = with_tau(10.0, 1.0, 99, 0.0)
    values = with_tau(10.0, 1.0, 99, 3 * residuals(values).std())
    for _ in range(20):
        errors = residuals(values)
        values = with_tau(10.0, 1.0, 99, 3 * errors.std())
    errors = residuals(values)
    assert abs(abs(errors[-3:].mean()) - 3 * errors.std()) < 1e-6
    assert batched.least_squares(block_of([values]), np.arange(1)).tolist() == [DEFER]
