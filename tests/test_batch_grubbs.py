"""The fast engine's Grubbs critical value is the reference's number, for every series length."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t

from skyline_analyzer.detection import batched

LENGTHS = [*range(3, 3000), 8640, 10079, 86401, 1_000_000]


def reference_critical(n: int) -> float:
    """The critical value exactly as the reference ``grubbs`` computes it (``scipy.stats.t.isf``)."""
    threshold = student_t.isf(0.05 / (2 * n), n - 2)
    threshold_sq = threshold * threshold
    return ((n - 1) / np.sqrt(n)) * np.sqrt(threshold_sq / (n - 2 + threshold_sq))


@pytest.mark.parametrize("shortcut", [True, False])
def test_the_critical_value_is_the_reference_one_bit_for_bit(shortcut: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the ``stdtrit`` shortcut (this scipy) and without it (a scipy whose ``t.isf`` is computed otherwise)."""
    assert batched._ISF_IS_STDTRIT  # the shortcut is what runs here
    monkeypatch.setattr(batched, "_ISF_IS_STDTRIT", shortcut)
    monkeypatch.setattr(batched, "_GRUBBS_CRITICAL", {})
    for n in LENGTHS:
        assert batched.grubbs_critical(n) == reference_critical(n), n
