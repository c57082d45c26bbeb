"""The batched statistics are the reference's bit for bit, not merely close (the votes sit on thresholds)."""

from __future__ import annotations

import numpy as np
import pytest

from skyline_analyzer import codec, config
from skyline_analyzer.detection import algorithms, batch, batched
from skyline_analyzer.detection.numerics import ewm_last
from skyline_analyzer.detection.series import Series

NOW = 1_700_000_000.0
LENGTHS = (3, 4, 7, 16, 61, 128, 1439, 1440, 8640, 8641)


def block_of(values: np.ndarray, step: float = 60.0) -> batched.Block:
    rows, n = values.shape
    timestamps = np.tile(NOW - step * np.arange(n - 1, -1, -1, dtype=np.float64), (rows, 1))
    series = [Series(timestamps[i].copy(), values[i].copy(), NOW, float(values[i, -1])) for i in range(rows)]
    return batched.Block(series, [f"m{i}" for i in range(rows)], timestamps, values, NOW, 86400)


def random_values(n: int, rows: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + n)
    scale = rng.choice([1e-6, 1.0, 1e3, 1e9], size=(rows, 1))
    values = scale * (1 + rng.normal(0, 0.1, (rows, n)))
    values[::3] = np.round(values[::3])  # ties and repeated values
    return values


@pytest.mark.parametrize("n", LENGTHS)
def test_means_stds_and_tails_are_bit_identical(n: int) -> None:
    values = random_values(n)
    block = block_of(values)
    rows = np.arange(values.shape[0])
    mean = batched._mean(block, rows)
    squares = batched._squares(block, rows)
    tail = batched._tail(block, rows)
    for i, row in enumerate(values):
        assert mean[i] == np.mean(row)
        assert np.sqrt(squares[i] / n) == np.std(row)
        assert np.sqrt(squares[i] / (n - 1)) == np.std(row, ddof=1)
        assert tail[i] == algorithms.tail_avg(row)


@pytest.mark.parametrize("n", LENGTHS)
def test_means_from_the_decoders_sums_are_numpys(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoded chunk's series carry the row sums the decoder formed to find non-finite values; the means
    the engine's blocks take from them are ``np.mean`` of each row, and the verdicts those of plain series."""
    values = random_values(n, rows=40)
    timestamps = NOW - 60 * np.arange(n - 1, -1, -1)
    raws = [codec.encode(zip(timestamps.astype(int).tolist(), row.tolist(), strict=True)) for row in values]
    names = [f"m{i}" for i in range(len(raws))]
    decoded = codec.decode_many(raws, names)
    assert all(isinstance(one, Series) and one.value_sum is not None for one in decoded)
    settings = config.load(None)
    plain = [Series(one.timestamps.copy(), one.values.copy(), one.last_timestamp, one.last_value) for one in decoded]
    want = batch.evaluate(plain, names, settings, NOW + 30)
    means = []
    evaluate_block = batch.evaluate_block

    def refuse(missing: np.ndarray) -> np.ndarray:
        raise AssertionError(f"means of rows {missing.tolist()} not seeded")

    def seen(block: batched.Block, settings: config.Settings) -> list:
        seeded = block.stat("mean", np.arange(block.values.shape[0]), refuse)
        means.extend(zip(seeded.tolist(), block.values, strict=True))
        return evaluate_block(block, settings)

    monkeypatch.setattr(batch, "evaluate_block", seen)
    verdicts = batch.evaluate(decoded, names, settings, NOW + 30)
    assert len(means) == len(decoded)
    assert all(mean == np.mean(row) for mean, row in means)
    assert verdicts == want


@pytest.mark.parametrize("n", LENGTHS)
def test_prefix_and_masked_reductions_are_bit_identical(n: int) -> None:
    """A prefix of a row, and a row's boolean selection, reduce exactly as the 1-D copies the reference makes."""
    values = random_values(n, seed=1)
    size = max(2, n // 3)
    for row, prefix in zip(values, values[:, :size].mean(axis=1), strict=True):
        assert prefix == np.mean(row[:size].copy())
    mask = np.zeros_like(values, dtype=bool)
    mask[:, ::2] = True
    selected = values[mask].reshape(values.shape[0], -1)
    for row, std in zip(values, selected.std(axis=1, ddof=1), strict=True):
        assert std == np.std(row[::2].copy(), ddof=1)


@pytest.mark.parametrize("n", LENGTHS)
def test_medians_and_histogram_edges_are_numpys(n: int) -> None:
    values = random_values(n, seed=2)
    values[0] = 5.0  # a flat row: numpy widens its range to [4.5, 5.5]
    for row, median in zip(values, np.median(values, axis=1), strict=True):
        assert median == np.median(row)
    # The edges batched.histogram_bins builds are np.histogram's.
    low, high = values.min(axis=1), values.max(axis=1)
    flat = low == high
    low, high = np.where(flat, low - 0.5, low), np.where(flat, high + 0.5, high)
    assert flat.any() and not flat.all()
    step = (high - low) / algorithms.HISTOGRAM_BINS
    edges = np.arange(algorithms.HISTOGRAM_BINS + 1, dtype=np.float64) * step[:, None] + low[:, None]
    edges[:, -1] = high
    for row, row_edges in zip(values, edges, strict=True):
        assert np.array_equal(np.histogram(row, bins=algorithms.HISTOGRAM_BINS)[1], row_edges)


@pytest.mark.parametrize("n", LENGTHS)
def test_histogram_bin_of_the_tail_counts_like_numpy(n: int) -> None:
    """Tails placed exactly on every edge: the batched vote equals the reference's."""
    values = random_values(n, seed=3)
    for k in range(algorithms.HISTOGRAM_BINS + 1):
        placed = values.copy()
        edges = np.array([np.histogram(row, bins=algorithms.HISTOGRAM_BINS)[1] for row in placed])
        placed[:, -3:] = edges[:, k][:, None]
        block = block_of(placed)
        codes = batched.histogram_bins(block, np.arange(placed.shape[0]))
        for i, row in enumerate(placed):
            if codes[i] == batched.DEFER:
                continue
            want = algorithms.histogram_bins(block.timestamps[i], row, now=NOW, full_duration=86400)
            assert bool(codes[i]) == want, (n, k, i)


@pytest.mark.parametrize("n", (1, 2, 3, 61, 1440, 8640))
def test_ewm_uses_the_reference_arithmetic(n: int) -> None:
    values = random_values(n, seed=4)
    weights, total, total_sq, denominator = batched._ewm_weights(n)
    for row in values:
        mean, std = ewm_last(row)
        assert float(np.dot(weights, row) / total) == mean
        if denominator > 0:
            biased = float(np.dot(weights, (row - mean) ** 2) / total)
            assert np.sqrt(biased * total_sq / denominator) == std


def test_grubbs_critical_value_is_the_reference_expression() -> None:
    values = random_values(61, seed=5)
    block = block_of(values)
    with np.errstate(invalid="ignore"):  # a flat row: 0 / 0, as in the reference
        codes = batched.grubbs(block, np.arange(values.shape[0]))
    for i, row in enumerate(values):
        assert bool(codes[i]) == algorithms.grubbs(block.timestamps[i], row, now=NOW, full_duration=86400)
