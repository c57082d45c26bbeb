"""Batched first_hour_average: the old points taken as a slice when they lead each row, by mask otherwise.

Both ways must select the reference's points in the reference's order. Blocks here mix rows whose old
points lead (timestamps in order), rows with the same number of old points that do not lead (shuffled),
and rows with other numbers (lagging series), with tails set where the reference vote flips.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from skyline_analyzer import config
from skyline_analyzer.detection import batch, engine
from skyline_analyzer.detection.batched import count_true
from skyline_analyzer.detection.series import Series
from tests.test_batch_random import FULL_DURATION, NOW, _to_boundary


def _block_series(seed: int) -> list[Series]:
    rng = np.random.default_rng(seed)
    out = []
    for row in range(24):
        lag = 0 if row % 3 else int(rng.integers(0, 7200))
        timestamps = NOW - lag - 60.0 * np.arange(1439, -1, -1)
        if row % 4 == 1:
            # Same count of old points as an ordered row, but not leading: the mask path.
            head = rng.permutation(1437)
            timestamps[:1437] = timestamps[:1437][head]
        values = rng.normal(100.0, 10.0, 1440)
        if row % 2:
            moved = _to_boundary(timestamps, values, "first_hour_average", 3)
            if moved is not None:
                values = moved
                values[-1] = np.nextafter(values[-1], np.inf if row % 4 == 1 else -np.inf)
        out.append(Series(timestamps, values, int(timestamps[-1]), float(values[-1])))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_first_hour_in_blocks_matches_the_reference(
    seed: int, load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "ALONE_BELOW", 1)
    series = _block_series(seed)
    names = [f"metrics.first_hour.{i}" for i in range(len(series))]
    chosen = load_settings(ALGORITHMS=["first_hour_average"], CONSENSUS=1, STALE_PERIOD=10**6,
                           FULL_DURATION=FULL_DURATION)
    fast = engine.analyse(series, names, chosen.replace(ANALYZER_ENGINE="fast"), NOW)
    reference = engine.analyse(series, names, chosen.replace(ANALYZER_ENGINE="reference"), NOW)
    assert fast == reference
    votes = [o.verdict.ensemble[0] for o in reference if o.verdict is not None]
    assert True in votes and False in votes


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 0), (5, 9), (2, 70_000)])
def test_count_true_counts_each_row(shape: tuple[int, ...]) -> None:
    mask = np.random.default_rng(1).random(shape) < 0.7
    assert count_true(mask).tolist() == np.count_nonzero(mask, axis=-1).tolist()
    assert count_true(mask).dtype == np.int64
    if len(shape) == 2 and shape[1]:
        full = np.ones(shape, dtype=bool)
        assert count_true(full).tolist() == [shape[1]] * shape[0]
