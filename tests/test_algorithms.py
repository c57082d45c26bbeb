"""The original Skyline test suite, the small vectors and the edge cases of docs/algorithms.md#test-vectors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from skyline_analyzer import config
from skyline_analyzer.detection.algorithms import (
    DETECTORS,
    histogram_bins,
    interval_is_anomalous,
    tail_avg,
)
from skyline_analyzer.detection.numerics import ols_residuals
from skyline_analyzer.detection.reference import run_selected_algorithm
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import Boring

NOW = 1_700_000_000
ORDER = list(config.Settings({}).ALGORITHMS)
T, F = True, False


def canonical(last: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """The original suite's fixture: one point a second for a day, all 1 but the last."""
    t = np.arange(NOW - 86400, NOW + 1, dtype=np.float64)
    v = np.ones(t.shape[0])
    v[-1] = last
    return t, v


def ensemble(t: np.ndarray, v: np.ndarray, now: float = NOW) -> list[bool]:
    with np.errstate(all="ignore"):
        return [DETECTORS[name](t, v, now=now, full_duration=86400) for name in ORDER]


def series_of(t: np.ndarray, v: np.ndarray) -> Series:
    last = v[-1]
    return Series(t, v, float(t[-1]), int(last) if float(last).is_integer() else float(last))


@pytest.fixture
def defaults(load_settings: Callable[..., config.Settings]) -> config.Settings:
    return load_settings()


class TestOriginalSuite:
    """tests/algorithms_test.py of etsy/skyline and earthgecko/skyline, ported."""

    def test_tail_avg(self) -> None:
        assert tail_avg(canonical()[1]) == 334

    @pytest.mark.parametrize(
        "name",
        ["grubbs", "first_hour_average", "stddev_from_average", "stddev_from_moving_average",
         "mean_subtraction_cumulation", "least_squares", "histogram_bins"],
    )
    def test_algorithm_flags_the_spike(self, name: str) -> None:
        t, v = canonical()
        assert DETECTORS[name](t, v, now=NOW, full_duration=86400) is True

    def test_run_selected_algorithm(self, defaults: config.Settings) -> None:
        t, v = canonical()
        verdict = run_selected_algorithm(series_of(t, v), "metrics.test", defaults, now=NOW)
        assert verdict.anomalous is True
        assert sum(1 for vote in verdict.ensemble if vote) >= defaults.CONSENSUS
        assert verdict.datapoint == 1000

    def test_novel_algorithm_is_refused_not_run(self, load_settings: Callable[..., config.Settings]) -> None:
        # The original's skipped `alwaysTrue` test: user-defined names are rejected at start-up instead.
        with pytest.raises(Exception, match="alwaysTrue"):
            load_settings(ALGORITHMS=["alwaysTrue"], CONSENSUS=1)


def sine(n: int = 1441) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n, dtype=np.float64)
    return NOW - 60.0 * (n - 1 - i), 100 + 10 * np.sin(i / 10)


def sine_last(value: float) -> tuple[np.ndarray, np.ndarray]:
    t, v = sine()
    v[-1] = value
    return t, v


def steps_10s() -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(8641)
    t = NOW - 10.0 * (8640 - i)
    v = 50 + (i % 7) + np.where(t >= NOW - 600, 20, 0)
    return t, v.astype(np.float64)


GOLDEN = {
    "canonical": (canonical, [T, T, T, T, F, T, F, T, T]),
    "constant": (lambda: canonical(1.0), [F] * 9),
    "one point": (lambda: (np.array([NOW], float), np.array([5.0])), [T] + [F] * 8),
    "two points": (lambda: (np.array([NOW - 60, NOW], float), np.array([5.0, 7.0])), [F] * 9),
    "three points": (lambda: (np.array([NOW - 120, NOW - 60, NOW], float), np.array([5.0, 5.0, 7.0])),
                     [T, F, F, F, F, T, F, F, F]),
    "sine": (sine, [F] * 9),
    "sine, last 300": (lambda: sine_last(300.0), [T, T, T, T, F, T, T, T, T]),
    "sine, last 60": (lambda: sine_last(60.0), [T, F, F, F, F, T, F, T, F]),
    "10 s steps": (steps_10s, [T, T, T, T, T, T, T, F, T]),
}


@pytest.mark.parametrize("vector", list(GOLDEN))
def test_golden_vector(vector: str) -> None:
    build, expected = GOLDEN[vector]
    assert ensemble(*build()) == expected


class TestGoldenVerdicts:
    def test_two_points_tail_avg_is_the_last(self) -> None:
        assert tail_avg(np.array([5.0, 7.0])) == 7

    def test_constant_day_is_boring(self, defaults: config.Settings) -> None:
        with pytest.raises(Boring):
            run_selected_algorithm(series_of(*canonical(1.0)), "metrics.flat", defaults, now=NOW)

    def test_sine_last_60_stops_after_ks_test(self, defaults: config.Settings) -> None:
        verdict = run_selected_algorithm(series_of(*sine_last(60.0)), "metrics.sine", defaults, now=NOW)
        assert verdict.ensemble == [T, F, F, F, F, F, F, F, F]
        assert verdict.anomalous is False
        full = run_selected_algorithm(series_of(*sine_last(60.0)), "metrics.sine",
                                      defaults.replace(RUN_OPTIMIZED_WORKFLOW=False), now=NOW)
        assert full.anomalous is False and full.ensemble == [T, F, F, F, F, T, F, T, F]


class TestEdgeCases:
    def test_tail_avg_of_nothing_raises(self) -> None:
        with pytest.raises(IndexError):
            tail_avg(np.array([]))

    def test_histogram_never_flags_the_maximum(self) -> None:
        t = np.arange(30, dtype=np.float64)
        v = np.concatenate([np.zeros(27), [10.0, 10.0, 10.0]])
        assert histogram_bins(t, v, now=NOW, full_duration=86400) is False

    def test_histogram_first_bin_only_flags_the_minimum(self) -> None:
        t = np.arange(40, dtype=np.float64)
        v = np.concatenate([np.linspace(0, 1, 37), [100.0, 100.0, 0.1]])
        # tail_avg = 66.7 lies in an empty middle bin: flagged.
        assert histogram_bins(t, v, now=NOW, full_duration=86400) is True
        v = np.concatenate([np.full(30, 100.0), [0.0, 0.0, 2.0]])
        # tail 0.67 is inside bin 0 (count 2 <= 20) but above its left edge: never flagged.
        assert histogram_bins(t[:33], v, now=NOW, full_duration=86400) is False

    @pytest.mark.parametrize(("algorithm", "t", "v", "expected"), [
        pytest.param("grubbs", *canonical(-1000.0), False, id="grubbs_is_one_sided"),
        # The cutoff is now - 82800: a point exactly there is not "first hour", so S is empty: False.
        pytest.param("first_hour_average", np.array([NOW - 82800.0, NOW - 60, NOW]), np.array([1.0, 1.0, 50.0]),
                     False, id="first_hour_average_uses_strictly_older_points"),
        pytest.param("first_hour_average", np.array([NOW - 86000.0, NOW - 85000.0, NOW - 60, NOW]),
                     np.array([1.0, 1.0, 5.0, 5.0]), True, id="first_hour_average_zero_std_and_different_tail"),
        pytest.param("mean_subtraction_cumulation", np.arange(10, dtype=np.float64),
                     np.array([3.0] * 9 + [3.0000001]), True, id="mean_subtraction_cumulation_constant_history"),
        pytest.param("median_absolute_deviation", np.arange(10, dtype=np.float64), np.array([3.0] * 9 + [300.0]),
                     False, id="median_absolute_deviation_zero_mad"),
        pytest.param("ks_test", *sine_last(300.0), False, id="ks_test_never_fires_on_60s_data"),
    ])
    def test_detector_edge_case(self, algorithm: str, t: np.ndarray, v: np.ndarray, expected: bool) -> None:
        assert DETECTORS[algorithm](t, v, now=NOW, full_duration=86400) is expected

    def test_least_squares_needs_both_rounded_terms(self) -> None:
        # Residuals far below 0.5 round to 0: not anomalous however many sigmas the tail is.
        t = np.arange(NOW - 99 * 60, NOW + 1, 60, dtype=np.float64)
        v = np.full(100, 1.0) + np.tile([0.001, -0.001], 50)
        v[-3:] += 0.04
        errors = ols_residuals(t, v)
        assert abs(errors[-3:].sum() / 3) > 3 * np.std(errors)  # past the threshold, but both round to 0
        assert DETECTORS["least_squares"](t, v, now=NOW, full_duration=86400) is False
        v[-3:] += 40
        v[:-3] += np.tile([1.0, -1.0], 49)[:97]
        assert DETECTORS["least_squares"](t, v, now=NOW, full_duration=86400) is True


    def test_second_order_interval_rule(self) -> None:
        assert interval_is_anomalous([0.0]) is False
        assert interval_is_anomalous([0.0, 10.0]) is False  # one interval: NaN std
        regular = [float(60 * k) for k in range(12)]
        assert interval_is_anomalous([*regular, regular[-1] + 6000]) is True
        assert interval_is_anomalous([0.0, 60.0, 120.0, 6000.0]) is False  # < 11 intervals can't exceed 3 std
