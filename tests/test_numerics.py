"""Each pinned numeric reproduces the original library's result, and differs from the naive modern call."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.stattools import adfuller

from skyline_analyzer.detection.algorithms import ks_test, least_squares, stddev_from_moving_average, tail_avg
from skyline_analyzer.detection.numerics import adf_pvalue, ewm_last, ks_2samp_asymptotic, ols_residuals, py2_round

NOW = 1_700_000_000


def _minutes(n: int) -> np.ndarray:
    return np.arange(NOW - (n - 1) * 60, NOW + 1, 60, dtype=np.float64)


def _noisy_trend(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A day of minutes: a slow linear rise with unit normal noise."""
    t = _minutes(1440)
    return t, 100 + 0.01 * (t - t[0]) / 60 + np.random.default_rng(seed).normal(0, 1, t.shape[0])


def _naive_residuals(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Residuals of numpy 2's default lstsq on raw timestamps, the fit the pinned numerics avoid."""
    design = np.vstack([t, np.ones(t.shape[0])]).T
    return v - design @ np.linalg.lstsq(design, v)[0]


class TestPython2Round:
    @pytest.mark.parametrize(
        ("x", "expected"),
        [(0.5, 1.0), (-0.5, -1.0), (1.5, 2.0), (2.5, 3.0), (-2.5, -3.0), (0.49999999999999994, 0.0), (0.4, 0.0),
         (1e300, 1e300), (0.0, 0.0)],
    )
    def test_half_away_from_zero(self, x: float, expected: float) -> None:
        assert py2_round(x) == expected

    def test_differs_from_python3_round_on_halves(self) -> None:
        assert round(0.5) == 0 and round(2.5) == 2  # the naive modern call
        assert py2_round(0.5) == 1 and py2_round(2.5) == 3

    def test_nan_passes_through(self) -> None:
        assert math.isnan(py2_round(math.nan))


class TestTrueDivision:
    def test_tail_avg_of_integers_is_true_division(self) -> None:
        # The original ran under `from __future__ import division`: (1 + 1 + 2) / 3 is 1.333..., not 1.
        assert tail_avg(np.array([1.0, 1.0, 2.0])) == pytest.approx(4 / 3)
        assert tail_avg(np.array([1.0, 1.0, 1000.0])) == 334.0


class TestLeastSquares:
    def test_residuals_equal_exact_ols_with_centred_timestamps(self) -> None:
        t, v = _noisy_trend(seed=7)
        centred = t - t.mean()
        slope = (centred * (v - v.mean())).sum() / (centred * centred).sum()
        exact = v - (v.mean() + slope * centred)
        np.testing.assert_allclose(ols_residuals(t, v), exact, rtol=0, atol=1e-8)

    def test_numpy2_default_rcond_loses_the_fit(self) -> None:
        t, v = _noisy_trend(seed=7)
        naive = _naive_residuals(t, v)
        assert np.std(naive) > 4 * np.std(ols_residuals(t, v))

    def test_verdict_depends_on_the_exact_fit(self) -> None:
        t, v = _noisy_trend(seed=3)
        v[-3:] += 6  # six residual standard deviations, well under three of the naive fit's
        assert least_squares(t, v, now=NOW, full_duration=86400) is True
        naive = _naive_residuals(t, v)
        tau = (naive[-1] + naive[-2] + naive[-3]) / 3
        assert not abs(tau) > 3 * np.std(naive)


class TestEwm:
    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=400))
    def test_equals_pandas_ewm_com50_unbiased(self, xs: list[float]) -> None:
        x = np.array(xs)
        series = pd.Series(x).ewm(com=50, adjust=True, ignore_na=False, min_periods=0)
        mean, std = ewm_last(x)
        assert mean == pytest.approx(series.mean().iloc[-1], rel=1e-9, abs=1e-6)
        want = series.std(bias=False).iloc[-1]
        assert std == pytest.approx(want, rel=1e-7, abs=1e-6) or (math.isnan(std) and math.isnan(want))

    def test_one_point_has_nan_std(self) -> None:
        assert math.isnan(ewm_last(np.array([5.0]))[1])

    def test_biased_std_would_change_a_verdict(self) -> None:
        # On a short series the unbiased correction is large: some last values are anomalous against the
        # biased std but not against the unbiased one the original used.
        history = [10.0, 12.0] * 15
        t = _minutes(len(history) + 1)
        disagreements = []
        for last in np.linspace(12.0, 40.0, 2001):
            x = np.array([*history, last])
            mean = pd.Series(x).ewm(com=50).mean().iloc[-1]
            biased = pd.Series(x).ewm(com=50).std(bias=True).iloc[-1]
            ours = stddev_from_moving_average(t, x, now=NOW, full_duration=86400)
            if ours != (abs(last - mean) > 3 * biased):
                disagreements.append(ours)
        assert disagreements and not any(disagreements)


class TestKolmogorovSmirnov:
    def test_asymptotic_p_value_of_scipy_1_1(self) -> None:
        rng = np.random.default_rng(11)
        a, b = rng.normal(0, 1, 25), rng.normal(0.8, 1, 25)
        statistic, p_value = ks_2samp_asymptotic(a, b)
        root_ne = math.sqrt(25 * 25 / 50)
        assert statistic == pytest.approx(scipy.stats.ks_2samp(a, b).statistic)
        assert p_value == scipy.stats.kstwobign.sf((root_ne + 0.12 + 0.11 / root_ne) * statistic)
        # Modern scipy's default (exact for small samples) and its uncorrected asymptotic both differ.
        assert abs(scipy.stats.ks_2samp(a, b).pvalue - p_value) > 1e-4
        assert abs(scipy.stats.ks_2samp(a, b, method="asymp").pvalue - p_value) > 1e-5


    def test_kolmogorov_survival_function_is_kstwobign_sf(self) -> None:
        x = np.concatenate([[0.0, 5e-324, 0.04, 1.0, 40.0, np.inf], np.random.default_rng(3).uniform(0, 4, 5000)])
        assert np.array_equal(scipy.special.kolmogorov(x), scipy.stats.kstwobign.sf(x))


class TestAdfuller:
    def test_constant_reference_gives_nan_not_an_exception(self) -> None:
        with pytest.raises(ValueError):
            adfuller(np.ones(40), maxlag=10)
        assert math.isnan(adf_pvalue(np.ones(40)))

    def test_too_short_reference_gives_nan_not_an_exception(self) -> None:
        short = np.random.default_rng(2).normal(0, 1, 21)
        with pytest.raises(ValueError):
            adfuller(short, maxlag=10)
        assert math.isnan(adf_pvalue(short))

    def test_matches_statsmodels_where_both_are_defined(self) -> None:
        x = np.random.default_rng(5).normal(0, 1, 300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert adf_pvalue(x) == adfuller(x, maxlag=10, regression="c", autolag="AIC")[1]

    def test_ks_test_with_constant_reference_is_false_not_an_error(self) -> None:
        # 10 s data: reference window constant, probe shifted -> KS fires, ADF is undefined -> not anomalous.
        t = np.arange(NOW - 3590, NOW + 1, 10, dtype=np.float64)
        v = np.where(t >= NOW - 600, 70.0, 50.0)
        assert ks_test(t, v, now=NOW, full_duration=86400) is False
