"""Calibrate the ADF fast path's rounding allowance: statsmodels against skyline_analyzer.detection.adf.

Generates windows of many shapes, lengths, offsets and scales, fits each with statsmodels' ``adfuller``
(``store=True`` for every lag's AIC and the t-statistic of the chosen lag) and with the fast path's
factorisations, and prints the largest difference among the windows the fast path decides, in its own
units: ``|t_fast - t_statsmodels| / (u * (1 + |t|))`` and ``|AIC_fast - AIC_statsmodels| / (rows * u)``,
where ``u = eps * (kappa + kappa_s**2)``. ``adf.ERROR_FACTOR`` must stay far above both
(docs/algorithms.md#adf-fast-path).

    .venv/bin/python benchmarks/adf_calibration.py [--windows 3000] [--seed 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from statsmodels.tsa.stattools import adfuller

from skyline_analyzer.detection import adf

MAXLAG = adf.ADF_MAXLAG


def window(kind: int, n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(size=n)
    if kind == 0:
        x = np.cumsum(noise)
    elif kind == 1:
        phi, x = rng.uniform(-0.9, 0.99), np.zeros(n)
        for k in range(1, n):
            x[k] = phi * x[k - 1] + noise[k]
    elif kind == 2:
        x = rng.uniform(0, 1) * np.arange(n) + noise
    elif kind == 3:
        x = np.round(noise * rng.uniform(0.3, 20))
    elif kind == 4:
        x = np.sin(np.arange(n) / rng.uniform(2, 30)) + 0.01 * noise
    else:
        x = np.cumsum(np.round(np.abs(noise) * 3))
    return 10.0 ** rng.uniform(0, 9) * (rng.random() < 0.5) + 10.0 ** rng.uniform(-6, 6) * x


def fast_aics(x: np.ndarray) -> tuple[np.ndarray, float, bool, int]:
    """Every lag's AIC as statsmodels reports it (constants included), the unit ``u`` and whether decidable."""
    n, rows = x.shape[0], x.shape[0] - 1 - MAXLAG
    shifted = sliding_window_view(np.diff(x)[None], rows, axis=1)
    columns = np.empty((1, MAXLAG + 2, rows))
    columns[:, 0] = x[None, MAXLAG : n - 1]
    columns[:, 1 : MAXLAG + 1] = shifted[:, MAXLAG - 1 :: -1]
    columns[:, MAXLAG + 1] = shifted[:, MAXLAG]
    factor, scale, error, ok = adf._factor(columns)
    last = np.square(factor[:, -1, :])
    rss = np.cumsum(last[:, ::-1], axis=1)[:, ::-1][:, 1:] * np.square(scale[:, -1:])
    with np.errstate(divide="ignore"):
        aic = rows * np.log(rss / rows) + 2.0 * np.arange(2, MAXLAG + 3) + rows * (math.log(2 * math.pi) + 1)
    return aic[0], float(error[0]), bool(ok[0]), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    worst_t = worst_aic = 0.0
    decided = 0
    for i in range(args.windows):
        x = window(i % 6, int(rng.choice([24, 30, 60, 120, 300, 300, 300])), rng)
        if np.ptp(x) == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = adfuller(x, maxlag=MAXLAG, regression="c", autolag="AIC", store=True, regresults=True)
            except (ValueError, np.linalg.LinAlgError):
                continue
        store = result[-1]
        aic_ref = np.array([store.autolag_results[k].aic for k in sorted(store.autolag_results)])
        aic, unit, ok, rows = fast_aics(x)
        t, (t_ok, t_unit) = adf._t_statistic(x[None], np.diff(x)[None], store.usedlag)
        if not (ok and t_ok[0]):
            continue
        decided += 1
        worst_aic = max(worst_aic, float(np.max(np.abs(aic - aic_ref))) / (rows * unit))
        worst_t = max(worst_t, abs(float(t[0]) - result[0]) / (float(t_unit[0]) * (1 + abs(result[0]))))
    print(f"{decided} of {args.windows} windows decidable; worst difference in units of u: t {worst_t:.2f}, "
          f"AIC {worst_aic:.3f}; ERROR_FACTOR = {adf.ERROR_FACTOR:g}")


if __name__ == "__main__":
    main()
