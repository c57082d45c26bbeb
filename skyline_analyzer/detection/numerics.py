"""Numerical building blocks that pin the behaviour of the libraries Skyline v1.2.8 ran on.

The original ran on Python 2 with numpy < 1.14 semantics, scipy 1.1, statsmodels 0.8 and pandas 0.x.
Several of their defaults have since changed; each function here reproduces the old result explicitly
so that a library upgrade cannot silently change a verdict.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import kolmogorov

#: pandas ``ewm(com=50)``: alpha = 1 / (1 + com).
EWM_COM = 50.0


def py2_round(x: float) -> float:
    """Round half away from zero, as Python 2's ``round(x)`` did.

    Python 3 rounds half to even (``round(0.5) == 0``); Python 2 gave ``1.0``. The fractional part
    ``|x| - floor(|x|)`` is computed exactly in binary floating point, so the half-way test is exact
    (``0.49999999999999994`` rounds to 0, unlike ``floor(x + 0.5)``). NaN and infinities pass through
    (Python 2 returned them unchanged; Python 3 would raise).
    """
    if not math.isfinite(x):
        return x
    magnitude = abs(x)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1.0
    return math.copysign(whole, x)


def ewm_last(values: np.ndarray, com: float = EWM_COM) -> tuple[float, float]:
    """Exponentially weighted mean and unbiased std at the last point of ``values``.

    Equals pandas ``Series.ewm(com=com, adjust=True, ignore_na=False, min_periods=0)`` ``.mean()`` and
    ``.std(bias=False)`` at the last index:

    ``w_i = (1 - a)^(n-1-i)`` with ``a = 1 / (1 + com)``; ``mean = sum(w x) / sum(w)``;
    ``var_b = sum(w (x - mean)^2) / sum(w)``; ``std = sqrt(var_b * W^2 / (W^2 - sum(w^2)))``, ``W = sum(w)``.

    With one point the bias correction is 0 / 0 and the std is NaN, as in pandas.
    """
    n = values.shape[0]
    decay = 1.0 - 1.0 / (1.0 + com)
    weights = decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
    total = weights.sum()
    mean = float(np.dot(weights, values) / total)
    biased_var = float(np.dot(weights, (values - mean) ** 2) / total)
    total_sq = total * total
    denominator = total_sq - float(np.dot(weights, weights))
    if denominator <= 0.0:
        return mean, math.nan
    return mean, math.sqrt(biased_var * total_sq / denominator)


def ols_residuals(timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Residuals of the ordinary least-squares line ``value = m * timestamp + c``.

    Solved as v1.2.8 did, with ``numpy.linalg.lstsq(A, y, rcond=-1)`` on the raw epoch timestamps. The
    explicit ``rcond=-1`` matters: numpy >= 1.14's default cut-off (``eps * max(M, N)``) treats the small
    singular value of ``[timestamp, 1]`` (timestamps ~1.7e9) as zero and returns a near-zero intercept,
    i.e. a wrong fit.
    """
    design = np.vstack([timestamps, np.ones(timestamps.shape[0])]).T
    (slope, intercept), *_ = np.linalg.lstsq(design, values, rcond=-1)
    return values - (slope * timestamps + intercept)


def ks_2samp_asymptotic(reference: np.ndarray, probe: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and the two-sided *asymptotic* p-value of scipy <= 1.2.

    ``D = max |F_ref(x) - F_probe(x)|`` over the pooled sample; with ``n_e = n1 n2 / (n1 + n2)``,
    ``p = K_sf((sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) * D)`` where ``K_sf`` is the survival function of the
    limiting Kolmogorov distribution. Modern scipy's ``ks_2samp`` defaults to exact p-values for small
    samples, which differ. ``K_sf`` is evaluated with ``scipy.special.kolmogorov``, the function behind
    ``scipy.stats.kstwobign.sf`` (identical values) without the distribution wrapper's ~50 us per call.
    """
    ref = np.sort(reference)
    prb = np.sort(probe)
    n1, n2 = ref.shape[0], prb.shape[0]
    pooled = np.concatenate([ref, prb])
    cdf_ref = np.searchsorted(ref, pooled, side="right") / n1
    cdf_prb = np.searchsorted(prb, pooled, side="right") / n2
    statistic = float(np.max(np.abs(cdf_ref - cdf_prb)))
    root_ne = math.sqrt(n1 * n2 / (n1 + n2))
    p_value = float(kolmogorov((root_ne + 0.12 + 0.11 / root_ne) * statistic))
    return statistic, p_value


#: ``adfuller(x, 10)`` as called by ``ks_test``.
ADF_MAXLAG = 10


def adf_pvalue(series: np.ndarray, maxlag: int = ADF_MAXLAG) -> float:
    """Augmented Dickey-Fuller p-value (constant term, lag chosen by AIC up to ``maxlag``).

    statsmodels 0.8 returned a NaN p-value (never an exception) for a constant series and for a series
    too short for ``maxlag``; current statsmodels raises ``ValueError`` for both. NaN compares False,
    so such a reference window is "not anomalous", as in the original.
    """
    from statsmodels.tsa.stattools import adfuller

    ntrend = 1
    if series.shape[0] == 0 or np.ptp(series) == 0 or maxlag > series.shape[0] // 2 - ntrend - 1:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(adfuller(series, maxlag=maxlag, regression="c", autolag="AIC")[1])
