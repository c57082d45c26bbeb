"""The ADF fast path decides as statsmodels does, or defers: golden vectors, generated windows, near ties."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import adfuller

from skyline_analyzer.detection import adf
from skyline_analyzer.detection.algorithms import KS_PROBE_START, KS_REFERENCE_START
from skyline_analyzer.detection.numerics import adf_pvalue
from skyline_analyzer.detection.series import Series
from tests.support import vector_input

NOW = 1_700_000_000
SHAPES = ("random_walk", "stationary_ar", "trend", "constant", "near_constant", "integers", "counter", "sine")


def _agree(windows: np.ndarray) -> tuple[int, int]:
    """Assert every decided window's decision is statsmodels'; return (decided, windows)."""
    below, decided = adf.adf_below(windows)
    for row in np.flatnonzero(decided):
        assert bool(below[row]) == bool(adf_pvalue(windows[row]) < adf.ADF_SIGNIFICANCE), row
    return int(decided.sum()), windows.shape[0]


def _window(shape: str, length: int, rng: np.random.Generator, offset: float, scale: float) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, length)
    if shape == "random_walk":
        values = np.cumsum(noise)
    elif shape == "stationary_ar":
        phi = rng.uniform(-0.5, 0.98)
        values = np.zeros(length)
        for i in range(1, length):
            values[i] = phi * values[i - 1] + noise[i]
    elif shape == "trend":
        values = rng.uniform(0.0, 0.5) * np.arange(length) + noise
    elif shape == "constant":
        values = np.zeros(length)
    elif shape == "near_constant":
        values = np.zeros(length)
        values[int(rng.integers(0, length))] = 1e-12
    elif shape == "integers":
        values = np.round(noise * 3)
    elif shape == "counter":
        values = np.cumsum(np.round(np.abs(noise) * 5))
    else:
        values = np.sin(np.arange(length) / rng.uniform(3.0, 40.0)) + rng.uniform(0.0, 0.3) * noise
    return offset + scale * values


@functools.cache
def _vector_windows() -> np.ndarray:
    """Every 300-point reference window of the 10 s golden vectors, at several ``now``."""
    windows = []
    for pairs in vector_input("corpus_10s").values():
        if not pairs:
            continue
        series = Series.from_pairs(pairs, "x")
        for back in range(0, 3600, 600):
            now = NOW - back
            mask = (series.timestamps >= now - KS_REFERENCE_START) & (series.timestamps < now - KS_PROBE_START)
            if np.count_nonzero(mask) == 300:
                windows.append(series.values[mask])
    return np.array(windows)


def test_golden_vector_windows_decide_as_statsmodels() -> None:
    decided, total = _agree(_vector_windows())
    assert total > 300
    assert decided >= 0.9 * total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    length=st.sampled_from([20, 23, 24, 25, 40, 100, 300]),
    seed=st.integers(0, 2**32 - 1),
    offset=st.sampled_from([0.0, 1.0, -50.0, 1e3, 1e6, 1.7e9]),
    scale=st.sampled_from([1e-6, 1e-3, 1.0, 7.5, 1e4]),
)
def test_generated_windows_decide_as_statsmodels(
    shape: str, length: int, seed: int, offset: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    _agree(np.array([_window(shape, length, rng, offset, scale) for _ in range(4)]))


def test_ordinary_windows_are_decided_here() -> None:
    rng = np.random.default_rng(11)
    ordinary = [shape for shape in SHAPES if shape != "near_constant"]
    windows = np.array([_window(shape, 300, rng, 1000.0, 5.0) for shape in ordinary for _ in range(8)])
    decided, total = _agree(windows)
    # A few AIC near-ties (gap below ~0.01) go to statsmodels; nothing else should.
    assert decided >= total - 3


def test_a_near_constant_window_is_deferred() -> None:
    # One value 5e-12 off a constant 1000: a degenerate design whose p-value is rounding noise.
    windows = np.array([_window("near_constant", 300, np.random.default_rng(seed), 1000.0, 5.0) for seed in range(3)])
    assert not adf.adf_below(windows)[1].any()


def test_refused_windows_are_never_below() -> None:
    rng = np.random.default_rng(3)
    for windows in (np.full((2, 300), 4.0), rng.normal(0, 1, (3, 23)), np.empty((0, 300))):
        below, decided = adf.adf_below(windows)
        assert decided.all() and not below.any()
        for window in windows:
            assert math.isnan(adf_pvalue(window))


def test_non_finite_windows_are_deferred() -> None:
    windows = np.random.default_rng(4).normal(0, 1, (2, 100))
    windows[0, 5], windows[1, 50] = np.nan, np.inf
    assert not adf.adf_below(windows)[1].any()


def test_critical_t_is_the_boundary_of_mackinnonp() -> None:
    from statsmodels.tsa.adfvalues import mackinnonp

    t = adf.critical_t()
    assert mackinnonp(t, regression="c", N=1) < 0.05 <= mackinnonp(np.nextafter(t, 0.0), regression="c", N=1)


def _mixed(weight: float) -> np.ndarray:
    """A window between a stationary AR(1) (weight 0) and a random walk (weight 1)."""
    noise = np.random.default_rng(21).normal(0.0, 1.0, 300)
    values = np.zeros(300)
    phi = 0.7 + 0.3 * weight
    for i in range(1, 300):
        values[i] = phi * values[i - 1] + noise[i]
    return 100.0 + values


def _bisect(flips: Callable[[float], object], low: float, high: float) -> tuple[float, float]:
    """Narrow ``[low, high]`` (``flips(low) != flips(high)``) to adjacent floats."""
    side = flips(low)
    assert flips(high) != side
    while True:
        middle = (low + high) / 2
        if middle in (low, high):
            return low, high
        if flips(middle) == side:
            low = middle
        else:
            high = middle


def test_a_p_value_at_the_boundary_is_deferred() -> None:
    low, high = _bisect(lambda w: adf_pvalue(_mixed(w)) < 0.05, 0.0, 1.0)
    windows = np.array([_mixed(low), _mixed(high), _mixed(0.0), _mixed(1.0)])
    below, decided = adf.adf_below(windows)
    assert adf_pvalue(windows[0]) < 0.05 <= adf_pvalue(windows[1])
    assert not decided[0] and not decided[1]
    assert decided[2] and below[2] and decided[3] and not below[3]


def _used_lag(window: np.ndarray) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(adfuller(window, maxlag=adf.ADF_MAXLAG, regression="c", autolag="AIC")[2])


def test_an_aic_tie_between_lags_is_deferred() -> None:
    noise = np.random.default_rng(5).normal(0.0, 1.0, 300)

    def window(weight: float) -> np.ndarray:
        # A growing MA(3) component in the diffs moves the AIC choice from 8 lags to 9 at some weight.
        return 50.0 + np.cumsum(noise + weight * 0.9 * np.roll(noise, 3))

    low, high = _bisect(lambda w: _used_lag(window(w)), 0.0, 1.0)
    assert _used_lag(window(low)) != _used_lag(window(high))
    _, decided = adf.adf_below(np.array([window(low), window(high)]))
    assert not decided.any()


@pytest.mark.parametrize("shift", [0.0, 3.0, 30.0])
def test_ten_second_series_fast_and_reference_agree(shift: float) -> None:
    from skyline_analyzer import config
    from skyline_analyzer.detection import engine
    from skyline_analyzer.synthetic import KINDS, make_values

    timestamps = NOW - 10.0 * np.arange(8639, -1, -1)
    series, names = [], []
    for n in range(36):
        values = np.round(make_values(KINDS[n % len(KINDS)], 8640, seed=n), 3)
        values[-60:] += shift * (1 + n % 3)
        series.append(Series(timestamps.copy(), values, int(timestamps[-1]), float(values[-1])))
        names.append(f"ten.{n}")
    base = config.Settings({}).replace(RUN_OPTIMIZED_WORKFLOW=False)
    fast = engine.analyse(series, names, base.replace(ANALYZER_ENGINE="fast"), NOW)
    reference = engine.analyse(series, names, base.replace(ANALYZER_ENGINE="reference"), NOW)
    assert [(o.exception, o.verdict) for o in fast] == [(o.exception, o.verdict) for o in reference]
    column = list(base.ALGORITHMS).index("ks_test")
    ks_true = sum(o.verdict is not None and o.verdict.ensemble[column] is True for o in fast)
    # The shifted series pass the KS test and reach the ADF step; some of them are stationary.
    assert (ks_true > 0) == (shift == 30.0)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.tuples(st.integers(20, 60), st.integers(20, 60)),
    distinct=st.sampled_from([2, 5, 1000]),
    shift=st.sampled_from([0, 1, 3]),
)
def test_batched_ks_statistic_and_p_value_are_the_reference_bits(
    seed: int, sizes: tuple[int, int], distinct: int, shift: int
) -> None:
    from skyline_analyzer.detection.kstest import ks_2samp_rows
    from skyline_analyzer.detection.numerics import ks_2samp_asymptotic

    rng = np.random.default_rng(seed)
    # Few distinct values make ties within and across the samples.
    reference = rng.integers(0, distinct, (5, sizes[0])).astype(np.float64)
    probe = rng.integers(0, distinct, (5, sizes[1])).astype(np.float64) + shift
    statistic, p_value = ks_2samp_rows(reference, probe)
    for row in range(5):
        assert (statistic[row], p_value[row]) == ks_2samp_asymptotic(reference[row], probe[row])


def test_the_engine_defers_a_boundary_window_to_the_reference() -> None:
    from collections import Counter

    from skyline_analyzer import config
    from skyline_analyzer.detection import engine

    low, high = _bisect(lambda w: adf_pvalue(_mixed(w)) < 0.05, 0.0, 1.0)
    # 300 points in [now-3600, now-600), the reference window, and 60 after it.
    timestamps = NOW - 10.0 * np.arange(360, 0, -1)
    series = []
    for weight in (low, high, 0.0):
        window = _mixed(weight)
        # The last ten minutes far above the reference window: the KS test passes, the ADF step decides.
        values = np.concatenate([window, np.full(60, window.max() + 100.0)])
        series.append(Series(timestamps.copy(), values, int(timestamps[-1]), float(values[-1])))
    names = ["boundary.below", "boundary.above", "stationary"]
    base = config.Settings({}).replace(RUN_OPTIMIZED_WORKFLOW=False)
    deferred: Counter[str] = Counter()
    fast = engine.analyse(series, names, base.replace(ANALYZER_ENGINE="fast"), NOW, deferred=deferred)
    reference = engine.analyse(series, names, base.replace(ANALYZER_ENGINE="reference"), NOW)
    assert [o.verdict for o in fast] == [o.verdict for o in reference]
    assert deferred["ks_test"] == 2
    column = list(base.ALGORITHMS).index("ks_test")
    assert [o.verdict.ensemble[column] for o in fast] == [True, False, True]
