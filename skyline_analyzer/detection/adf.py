"""The augmented Dickey-Fuller step of ``ks_test``, vectorised over many windows, deferring close calls.

The reference (:func:`skyline_analyzer.detection.numerics.adf_pvalue`) calls statsmodels'
``adfuller(x, maxlag=10, regression='c', autolag='AIC')`` and ``ks_test`` asks whether the p-value is below
0.05. statsmodels builds the lag-augmented design and, for each lag ``k = 0 .. 10``, fits by OLS (an SVD
pseudo-inverse of the raw design) ``diff(x)`` on ``[constant, level, k lagged diffs]`` over the common
sample of ``n - 11`` rows; it keeps the lag of least AIC (the smaller lag on an exact tie), refits that lag
on its own longer sample and turns the level coefficient's t-statistic into MacKinnon's approximate
p-value. That costs about 5 ms per window.

Here the same quantities come from one Gram matrix per window, built for every window of a block at once:

* the constant is removed by centring every column (regression with an intercept is regression of
  centred data), the columns are scaled to unit length and the Gram matrix of ``[level, lags, diff]`` is
  Cholesky-factored; the residual sum of squares of every nested lag model is a tail sum of squares of
  the factor's last row, so one factorisation gives all eleven AICs;
* the chosen lag's fit on its own sample is a second factorisation, and the level coefficient's
  t-statistic is the factor's entry ``L[y, level]`` over the residual standard error;
* MacKinnon's p-value increases with the t-statistic, so ``p < 0.05`` is ``t < T_CRITICAL``, where
  :func:`critical_t` finds the boundary on statsmodels' own ``mackinnonp``.

Exactness. These are not statsmodels' floating-point operations, so a window is decided here only when
neither the lag choice nor the decision can differ from statsmodels': the AIC winner must lead the
runner-up, and ``t`` must be away from ``T_CRITICAL``, by more than a bound on both computations' rounding.
That bound is ``ERROR_FACTOR * eps * (kappa + kappa_s**2)`` (relative, docs/algorithms.md#adf-fast-path):

* ``kappa`` bounds the condition number of statsmodels' raw design ``[1, X]`` (with the diff column, so
  that a near-perfect fit counts too): its Frobenius norm times ``max(c, 1) + |column means|`` over
  ``sigma_min(centred X)``, because ``[1, X] = [c 1, Xc] M`` with ``M = [[1/c, means], [0, I]]``
  (``|M^-1| <= max(c, 1) + |means|``), ``[c 1, Xc]`` has orthogonal blocks, and ``c = sigma_min / sqrt(rows)``
  makes its smallest singular value ``sigma_min``; the pseudo-inverse and the residuals lose about
  ``kappa`` ulps;
* ``kappa_s**2`` bounds the normal equations' own loss (the squared condition number of the scaled,
  centred Gram matrix, from the inverse of its Cholesky factor).

A window whose ``kappa`` exceeds :data:`KAPPA_MAX` is deferred outright: statsmodels' rank test and its
pseudo-inverse cut-off (``1e-15`` of the largest singular value) start to drop directions near ``1e13``,
and its results are then not the least-squares fit this module computes. Non-finite data and a failed
factorisation defer too. Windows too short for ``maxlag`` and constant windows are statsmodels' NaN, "not
below", as in the reference.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from skyline_analyzer.detection.numerics import ADF_MAXLAG

#: ``ks_test``'s significance level for the ADF p-value.
ADF_SIGNIFICANCE = 0.05
#: Rounding allowance, in units of ``eps * (kappa + kappa_s**2)``, on the AIC gap (per row of the sample)
#: and on ``t``'s distance to the critical value (relative to ``1 + |t|``). Over the calibration windows
#: (random walks, AR(1), trends, integer noise, sines, counters; 24 to 300 points; offsets to 1e9 and scales
#: from 1e-6 to 1e6) that statsmodels fitted and this module decided, the two differed by at most 7.8 of
#: these units on ``t`` and 0.11 on an AIC: this allows some 4,000 times that (docs/algorithms.md#adf-fast-path).
ERROR_FACTOR = 32768.0
#: Above this bound on the raw design's condition number the window is left to statsmodels.
KAPPA_MAX = 1e10
#: An absolute allowance on ``t`` for the rounding of ``mackinnonp`` itself near the boundary.
T_FLOOR = 1e-9
_EPS = float(np.finfo(np.float64).eps)


@functools.cache
def critical_t() -> float:
    """The largest float ``t`` with ``mackinnonp(t, 'c', N=1) < 0.05``, found by bisection on statsmodels'.

    ``mackinnonp`` is increasing in ``t`` (a normal CDF of a polynomial increasing over this range), so a
    t-statistic below this value has a p-value below 0.05 and one above it does not.
    """
    from statsmodels.tsa.adfvalues import mackinnonp

    low, high = -10.0, 0.0
    assert mackinnonp(low, regression="c", N=1) < ADF_SIGNIFICANCE <= mackinnonp(high, regression="c", N=1)
    while True:
        middle = (low + high) / 2
        if middle in (low, high):
            return low
        if mackinnonp(middle, regression="c", N=1) < ADF_SIGNIFICANCE:
            low = middle
        else:
            high = middle


def _factor(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cholesky factors of the scaled, centred Gram matrices of ``columns`` (``(m, k, rows)``, raw).

    Returns ``(factor, scale, error, ok)``: the lower factors ``(m, k, k)`` of the unit-diagonal Gram
    matrices, each column's centred norm, the relative rounding bound ``eps * (kappa + kappa_s**2)`` per
    window (its ``kappa`` from the design with a constant), and which windows could be factored at all
    within :data:`KAPPA_MAX`.
    """
    m, k, rows = columns.shape
    means = columns.mean(axis=2)
    raw_norm = np.sqrt(rows + np.einsum("mkr,mkr->m", columns, columns))
    centred = columns - means[:, :, None]
    gram = np.matmul(centred, centred.transpose(0, 2, 1))
    scale = np.sqrt(np.diagonal(gram, axis1=1, axis2=2))
    ok = np.all(scale > 0, axis=1) & np.all(np.isfinite(gram.reshape(m, -1)), axis=1)
    safe = np.where(ok[:, None], scale, 1.0)
    unit = gram / (safe[:, :, None] * safe[:, None, :])
    unit[~ok] = np.eye(k)
    factor = np.empty_like(unit)
    try:
        factor[:] = np.linalg.cholesky(unit)
    except np.linalg.LinAlgError:
        for window in range(m):
            try:
                factor[window] = np.linalg.cholesky(unit[window])
            except np.linalg.LinAlgError:
                factor[window] = np.eye(k)
                ok[window] = False
    inverse_sq = np.square(np.linalg.inv(factor)).sum(axis=(1, 2))
    # lambda_min >= 1 / |L^-1|_F^2 and lambda_max <= trace = k.
    kappa_s_sq = k * inverse_sq
    sigma_min = safe.min(axis=1) / np.sqrt(inverse_sq)
    # [1, X] = [c 1, Xc] [[1/c, means], [0, I]]; with c = sigma_min / sqrt(rows) the first factor's smallest
    # singular value is sigma_min and the second's inverse has norm at most max(c, 1) + |means|.
    column = np.maximum(sigma_min / math.sqrt(rows), 1.0)
    kappa = raw_norm * (column + np.sqrt(np.square(means).sum(axis=1))) / sigma_min
    error = _EPS * (kappa + kappa_s_sq)
    ok &= np.isfinite(error) & (kappa <= KAPPA_MAX)
    return factor, scale, error, ok


def adf_below(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window (row of ``windows``): is the ADF p-value below 0.05, and is that decided here?

    Returns ``(below, decided)``; where ``decided`` is False the caller must ask statsmodels.
    """
    m, n = windows.shape
    below = np.zeros(m, dtype=bool)
    decided = np.zeros(m, dtype=bool)
    if m == 0 or n // 2 - 2 < ADF_MAXLAG:
        # statsmodels refuses the window (NaN in the reference): never below.
        decided[:] = True
        return below, decided
    finite = np.all(np.isfinite(windows), axis=1)
    constant = finite & (windows.max(axis=1) == windows.min(axis=1))
    decided[constant] = True
    todo = np.flatnonzero(finite & ~constant)
    if todo.shape[0] == 0:
        return below, decided
    x = windows[todo]
    diff = np.diff(x, axis=1)
    lag, sample = _choose_lag(x, diff)
    for chosen in np.unique(lag[sample]):
        picked = np.flatnonzero(sample & (lag == chosen))
        t, t_ok = _t_statistic(x[picked], diff[picked], int(chosen))
        t_critical = critical_t()
        margin = ERROR_FACTOR * t_ok[1] * (1.0 + np.abs(t)) + T_FLOOR
        clear = t_ok[0] & (np.abs(t - t_critical) > margin)
        below[todo[picked]] = clear & (t < t_critical)
        decided[todo[picked]] = clear
    return below, decided


def _choose_lag(x: np.ndarray, diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The AIC-chosen lag per window, and whether it is certain (the winner clear of rounding)."""
    n = x.shape[1]
    rows = n - 1 - ADF_MAXLAG
    # windows[:, s] is diff[s : s + rows]: lag j of the common sample starts at ADF_MAXLAG - j.
    shifted = sliding_window_view(diff, rows, axis=1)
    columns = np.empty((x.shape[0], ADF_MAXLAG + 2, rows))
    columns[:, 0] = x[:, ADF_MAXLAG : n - 1]
    columns[:, 1 : ADF_MAXLAG + 1] = shifted[:, ADF_MAXLAG - 1 :: -1]
    columns[:, ADF_MAXLAG + 1] = shifted[:, ADF_MAXLAG]
    factor, scale, error, ok = _factor(columns)
    # RSS of the model with level and j lags: the tail of the last row of the factor beyond column j.
    last = np.square(factor[:, -1, :])
    rss = np.cumsum(last[:, ::-1], axis=1)[:, ::-1][:, 1:] * np.square(scale[:, -1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        aic = rows * np.log(rss / rows) + 2.0 * np.arange(2, ADF_MAXLAG + 3)
    ok &= np.all(np.isfinite(aic), axis=1)
    aic[~ok] = 0.0
    lag = np.argmin(aic, axis=1)
    ordered = np.sort(aic, axis=1)
    gap = ordered[:, 1] - ordered[:, 0]
    # Each AIC may be off by rows * (relative RSS error); two of them are compared.
    return lag, ok & (gap > 2.0 * rows * ERROR_FACTOR * error)


def _t_statistic(x: np.ndarray, diff: np.ndarray, lag: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The level coefficient's t-statistic with ``lag`` lagged diffs, on that lag's own sample.

    Columns ``[lag 1 .. lag k, level, diff]``: with the level last among the regressors, its coefficient
    is ``L[y, level] / L[level, level]`` and its standard error ``s / L[level, level]`` (scaled units; the
    t-statistic does not depend on the scaling).
    """
    n = x.shape[1]
    rows = n - 1 - lag
    shifted = sliding_window_view(diff, rows, axis=1)
    columns = np.empty((x.shape[0], lag + 2, rows))
    columns[:, :lag] = shifted[:, lag - 1 :: -1] if lag else shifted[:, :0]
    columns[:, lag] = x[:, lag : n - 1]
    columns[:, lag + 1] = shifted[:, lag]
    factor, _, error, ok = _factor(columns)
    residual = np.abs(factor[:, lag + 1, lag + 1]) / math.sqrt(rows - (lag + 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = factor[:, lag + 1, lag] / residual
    ok &= np.isfinite(t)
    return np.where(ok, t, 0.0), (ok, error)
