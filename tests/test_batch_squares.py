"""stddev_from_average and grubbs decided from an interval of the squared deviations, the exact sum for
close calls: the reference's vote on rows whose tail sits within ulps of each threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyline_analyzer.detection import algorithms, batched
from tests.test_batch_exact import NOW, block_of

#: Lengths at which a tail can pass either threshold (three tail values need some 30 others to stand out).
LENGTHS = (40, 100, 1440)
#: Levels and spreads: a mean near zero, means that dwarf the deviations (wide intervals), and values
#: whose squares are subnormal (their products lose bits to underflow).
SHAPES = ((0.0, 1.0), (1e3, 30.0), (1e6, 1e-2), (1e9, 5.0), (-4e4, 7e3), (0.0, 1e-158), (1e-150, 1e-157))
DETECTORS: dict[str, tuple[Callable, Callable]] = {
    "stddev_from_average": (batched.stddev_from_average, algorithms.stddev_from_average),
    "grubbs": (batched.grubbs, algorithms.grubbs),
}


def reference_vote(reference: Callable, values: np.ndarray) -> bool:
    timestamps = NOW - 60.0 * np.arange(values.shape[0] - 1, -1, -1, dtype=np.float64)
    return reference(timestamps, values, now=NOW, full_duration=86400)


def with_tail(base: np.ndarray, tail: float) -> np.ndarray:
    values = base.copy()
    values[-3:] = tail
    return values


def flip_point(reference: Callable, base: np.ndarray, above: float) -> float:
    """The largest tail (the last three values) at or above the mean for which the reference votes False:
    bisected down to adjacent floats, so that the next float up votes True."""
    low, high = float(base.mean()), above
    assert not reference_vote(reference, with_tail(base, low)) and reference_vote(reference, with_tail(base, high))
    while np.nextafter(low, high) != high:
        middle = low + (high - low) / 2
        if middle in (low, high):
            middle = float(np.nextafter(low, high))
        if reference_vote(reference, with_tail(base, middle)):
            high = middle
        else:
            low = middle
    return low


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("n", LENGTHS)
def test_tails_within_ulps_of_the_threshold_get_the_reference_vote(name: str, n: int) -> None:
    """Rows of every shape with their tail at the reference's flip point, a dozen floats either side and
    1e-7 relative away: the reference's votes, the close ones through the exact sum."""
    batched_form, reference = DETECTORS[name]
    rng = np.random.default_rng(n)
    rows = []
    for level, spread in SHAPES:
        base = level + spread * rng.normal(0.0, 1.0, n)
        flip = flip_point(reference, base, level + 100 * spread * n)
        tails, down = [flip], [flip]
        for _ in range(12):
            tails.append(float(np.nextafter(tails[-1], np.inf)))
            down.append(float(np.nextafter(down[-1], -np.inf)))
        # and a little further, where the interval decides without the exact sum
        tails += [flip * (1 + k * 1e-7) if flip else k * 1e-7 for k in (-3, -1, 1, 3)]
        rows += [with_tail(base, tail) for tail in [*down[1:], *tails]]
    values = np.array(rows)
    # The interval holds the exact sum of squared deviations, row by row.
    everything = np.arange(values.shape[0])
    low, high = batched._squares_interval(block_of(values), everything)
    exact = batched._squares(block_of(values), everything)
    assert np.all((low <= exact) & (exact <= high))
    block = block_of(values)
    exact_rows = []
    squares = batched._squares

    def counted(block: batched.Block, which: np.ndarray) -> np.ndarray:
        exact_rows.extend(which.tolist())
        return squares(block, which)

    with pytest.MonkeyPatch.context() as patch, np.errstate(all="ignore"):
        patch.setattr(batched, "_squares", counted)
        codes = batched_form(block, np.arange(values.shape[0]))
    want = [reference_vote(reference, row) for row in values]
    assert [code == batched.TRUE for code in codes.tolist()] == want
    assert any(want) and not all(want)
    # The close calls took the exact sum, and only they: most of the rows were decided by the interval.
    assert 0 < len(exact_rows) < values.shape[0]


@pytest.mark.parametrize("name", DETECTORS)
def test_ordinary_rows_never_need_the_exact_sum(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Noise of every scale, flat rows, spikes: decided from the interval alone (the exact sum raises)."""
    batched_form, reference = DETECTORS[name]
    rng = np.random.default_rng(7)
    scale = rng.choice([1e-3, 1.0, 1e3, 1e6], size=(200, 1))
    values = scale * (10 + rng.normal(0.0, 1.0, (200, 1440)))
    values[::10, -3:] += 50 * scale[::10]
    values[5::10] = 42.0

    def refuse(block: batched.Block, which: np.ndarray) -> np.ndarray:
        raise AssertionError(f"exact squares asked for rows {which[:5].tolist()}")

    monkeypatch.setattr(batched, "_squares", refuse)
    with np.errstate(all="ignore"):
        codes = batched_form(block_of(values), np.arange(values.shape[0]))
    want = [reference_vote(reference, row) for row in values]
    assert [code == batched.TRUE for code in codes.tolist()] == want
    assert sum(want) >= 20


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 300), st.floats(-300, 300), st.floats(-12, 12), st.integers(0, 2**32 - 1))
def test_the_interval_holds_the_exact_sum_at_every_scale(n: int, scale: float, offset: float, seed: int) -> None:
    """Values from 1e-300 to 1e300, with a mean from far below to far above their spread, rounded or not:
    the exact sum of squared deviations is inside the interval (or the interval is ``[0, inf]``)."""
    rng = np.random.default_rng(seed)
    spread = 10.0**scale
    with np.errstate(all="ignore"):
        values = spread * (10.0**offset + rng.normal(0.0, 1.0, (4, n)))
    values[1] = np.round(values[1])
    values[2, : n // 2] = values[2, 0]
    everything = np.arange(values.shape[0])
    with np.errstate(all="ignore"):
        low, high = batched._squares_interval(block_of(values), everything)
        exact = batched._squares(block_of(values), everything)
    finite = np.isfinite(exact)
    assert np.all((low[finite] <= exact[finite]) & (exact[finite] <= high[finite]))
    assert np.all(high[~finite] == np.inf)
