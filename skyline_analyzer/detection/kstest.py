"""``ks_test`` over a block of equal-length series: windows, the two-sample KS test, then the ADF step.

The reference (:func:`skyline_analyzer.detection.algorithms.ks_test`) takes the reference window
``[now-3600, now-600)`` and the probe window ``[now-600, ...)``, runs scipy 1.1's asymptotic two-sample KS
test and, when ``p < 0.05`` and ``D > 0.5``, the ADF test of the reference window. Here rows with the same
window sizes are taken together (boolean masks copy each row's selection in order, so a row's window is
exactly the reference's):

* the KS statistic is the same set of numbers: ``a / n1 - b / n2`` where ``a`` and ``b`` count the values
  of each sample at most ``x``, evaluated at every pooled value (after a stable sort, at the last of each
  run of equal values, where the counts are complete), so ``D`` and ``p`` are bit-identical;
* the ADF step is :func:`skyline_analyzer.detection.adf.adf_below`, which leaves close calls to statsmodels.

:func:`ks_votes` returns the votes and which rows it decided; an undecided row is run by the reference.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import kolmogorov

from skyline_analyzer.detection.adf import adf_below
from skyline_analyzer.detection.algorithms import KS_MIN_SAMPLES, KS_PROBE_START, KS_REFERENCE_START

#: ``ks_test``'s thresholds on the KS p-value and statistic.
KS_SIGNIFICANCE = 0.05
KS_MIN_STATISTIC = 0.5


def ks_2samp_rows(reference: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, :func:`skyline_analyzer.detection.numerics.ks_2samp_asymptotic`'s ``(D, p)``, bit for bit."""
    n1, n2 = reference.shape[1], probe.shape[1]
    pooled = np.concatenate([reference, probe], axis=1)
    order = np.argsort(pooled, axis=1, kind="stable")
    ordered = np.take_along_axis(pooled, order, axis=1)
    below_ref = np.cumsum(order < n1, axis=1)
    below_probe = np.arange(1, n1 + n2 + 1) - below_ref
    gaps = np.abs(below_ref / n1 - below_probe / n2)
    # Only the last of equal values has every equal value counted, as searchsorted(side='right') does.
    gaps[:, :-1][ordered[:, 1:] == ordered[:, :-1]] = 0.0
    statistic = gaps.max(axis=1)
    root_ne = math.sqrt(n1 * n2 / (n1 + n2))
    return statistic, kolmogorov((root_ne + 0.12 + 0.11 / root_ne) * statistic)


def ks_votes(timestamps: np.ndarray, values: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
    """``(votes, decided)`` of ``ks_test`` per row of ``(rows, length)`` arrays."""
    rows = values.shape[0]
    votes = np.zeros(rows, dtype=bool)
    decided = np.ones(rows, dtype=bool)
    # The probe window [now-600, ...) lies inside [now-3600, ...): the reference window is the difference.
    probe_size = np.count_nonzero(timestamps >= now - KS_PROBE_START, axis=1)
    reference_size = np.count_nonzero(timestamps >= now - KS_REFERENCE_START, axis=1) - probe_size
    testable = (reference_size >= KS_MIN_SAMPLES) & (probe_size >= KS_MIN_SAMPLES)
    if not testable.any():
        # Always so at 60 s resolution: ten minutes hold ten points.
        return votes, decided
    # NaN compares unlike the sort assumes: such rows are the reference's.
    testable_finite = testable & np.all(np.isfinite(values), axis=1)
    decided[testable & ~testable_finite] = False
    in_probe = timestamps >= now - KS_PROBE_START
    in_reference = (timestamps >= now - KS_REFERENCE_START) & ~in_probe
    sizes = reference_size * (values.shape[1] + 1) + probe_size
    for size in np.unique(sizes[testable_finite]):
        picked = np.flatnonzero(testable_finite & (sizes == size))
        n1, n2 = int(reference_size[picked[0]]), int(probe_size[picked[0]])
        chosen = values[picked]
        reference = chosen[in_reference[picked]].reshape(picked.shape[0], n1)
        probe = chosen[in_probe[picked]].reshape(picked.shape[0], n2)
        statistic, p_value = ks_2samp_rows(reference, probe)
        shifted = np.flatnonzero((p_value < KS_SIGNIFICANCE) & (statistic > KS_MIN_STATISTIC))
        if shifted.shape[0]:
            below, adf_decided = adf_below(reference[shifted])
            votes[picked[shifted]] = below
            decided[picked[shifted]] = adf_decided
    return votes, decided
