"""The fast engine's path for a series analysed alone (skyline_analyzer.detection.single).

A length shared by fewer than ``batch.ALONE_BELOW`` series is analysed series by series. These tests pin
both routings against the reference on the same random, boundary-seeking series as test_batch_random
(every series in blocks, every series alone), and each scalar detector against its reference detector
on hand-made edge cases, where a scalar form must either give the reference's vote or defer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from skyline_analyzer import config
from skyline_analyzer.detection import batch, engine, single
from skyline_analyzer.detection.algorithms import DETECTORS
from skyline_analyzer.detection.batched import DEFER, TRUE
from skyline_analyzer.detection.reference import Verdict, consensus, run_ensemble
from skyline_analyzer.detection.series import Series
from tests import test_batch_random as random_series
from tests.test_batch_random import NOW, _to_boundary

FULL_DURATION = 86400


@pytest.mark.parametrize("alone_below", [1, 10**9], ids=["all-in-blocks", "all-alone"])
def test_both_routings_agree_with_the_reference_on_random_series(
    alone_below: int, load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_batch_random's 10,000 series (most of whose lengths few series share, so that by default most
    are analysed alone), with every series in blocks, then every series alone."""
    monkeypatch.setattr(batch, "ALONE_BELOW", alone_below)
    random_series.test_fast_and_reference_agree_on_10000_random_series(load_settings)


def _edge_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    cases: dict[str, np.ndarray] = {
        "one point": np.array([5.0]),
        "two points": np.array([1.0, 9.0]),
        "three points": np.array([1.0, 2.0, 40.0]),
        "flat": np.full(200, 3.0),
        "flat zero": np.zeros(200),
        "flat but one ulp": np.r_[np.full(199, 1e6), np.nextafter(1e6, np.inf)],
        "negative zero": np.r_[np.zeros(100), -np.zeros(99), 1.0],
        "spike": np.r_[rng.normal(50.0, 2.0, 500), 90.0],
        "dip": np.r_[rng.normal(50.0, 2.0, 500), 10.0],
        "tail at the maximum": np.r_[rng.normal(0.0, 1.0, 300), 10.0, 10.0, 10.0],
        "tail at the minimum": np.r_[rng.normal(0.0, 1.0, 300), -10.0, -10.0, -10.0],
        "huge": np.r_[rng.normal(0.0, 1.0, 300), 1.7e308, -1.7e308],
        "tiny": rng.normal(0.0, 1e-310, 300),
        "subnormal steps": np.r_[np.zeros(298), 5e-324, 1e-323],
        "nan inside": np.r_[rng.normal(0.0, 1.0, 100), np.nan, rng.normal(0.0, 1.0, 100)],
        "nan last": np.r_[rng.normal(0.0, 1.0, 100), np.nan],
        "inf last": np.r_[rng.normal(0.0, 1.0, 100), np.inf],
        "minus inf inside": np.r_[-np.inf, rng.normal(0.0, 1.0, 100)],
        "integers": rng.integers(0, 4, 1000).astype(np.float64),
        "rare bin": np.r_[np.zeros(500), np.ones(5) * 7.0, np.full(3, 7.0)],
        "huge offset": 1.7e9 + rng.normal(0.0, 1.0, 1440).round(2),
    }
    out = []
    for label, values in cases.items():
        n = values.shape[0]
        for spacing, timestamps in (
            ("60s", NOW - 60.0 * np.arange(n - 1, -1, -1)),
            ("old", NOW - FULL_DURATION - 60.0 * np.arange(n - 1, -1, -1)),
            ("shuffled", np.random.default_rng(n).permutation(NOW - 60.0 * np.arange(n))),
        ):
            out.append((f"{label}/{spacing}", timestamps.astype(np.float64), values.astype(np.float64)))
    return out


EDGE_CASES = _edge_cases()


def _both_votes(algorithm: str, timestamps: np.ndarray, values: np.ndarray) -> tuple[int, bool | None]:
    """The scalar form's code and the reference detector's vote (None where it raises, as the engine records)."""
    with np.errstate(all="ignore"):
        code = single.SCALAR[algorithm](single.Alone(timestamps, values, NOW, FULL_DURATION))
        try:
            return code, bool(DETECTORS[algorithm](timestamps, values, now=NOW, full_duration=FULL_DURATION))
        except Exception:
            return code, None


@pytest.mark.parametrize("algorithm", sorted(single.SCALAR))
def test_every_scalar_vote_is_the_reference_vote_or_defers(algorithm: str) -> None:
    decided = deferred = 0
    for label, timestamps, values in EDGE_CASES:
        code, want = _both_votes(algorithm, timestamps, values)
        if code == DEFER:
            deferred += 1
            continue
        decided += 1
        assert want is not None, label
        assert (code == TRUE) == want, label
    # Nearly every case is decided here; only the histogram leaves its narrow and overflowing bins.
    assert decided >= len(EDGE_CASES) - 25
    assert deferred == 0 or algorithm == "histogram_bins"


@pytest.mark.parametrize("algorithm", sorted(set(single.SCALAR) - {"ks_test"}))
def test_scalar_votes_on_gappy_days_pushed_onto_the_reference_boundary(algorithm: str) -> None:
    """Day-long gappy series (a first hour to average, a length of their own), the tail set to the float
    where the reference vote flips, then moved a few ulps either way: the scalar vote is the reference's."""
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        timestamps = NOW - 60.0 * np.arange(1439, -1, -1)
        level = 10.0 ** rng.uniform(-3.0, 7.0)
        values = level + level * rng.uniform(0.01, 0.3) * rng.normal(0.0, 1.0, 1440)
        if seed % 3 == 0:
            values = np.round(values)
        keep = rng.random(1440) < rng.uniform(0.5, 0.95)
        keep[-3:] = True
        timestamps, values = timestamps[keep], values[keep]
        tail = 1 if seed % 2 else 3
        moved = _to_boundary(timestamps, values, algorithm, tail)
        if moved is None:
            continue
        for ulps in (-2, -1, 0, 1, 2):
            trial = moved.copy()
            for _ in range(abs(ulps)):
                trial[-tail:] = np.nextafter(trial[-tail:], np.inf if ulps > 0 else -np.inf)
            # np.histogram may refuse bins too narrow for the range: the reference's vote is then None.
            code, want = _both_votes(algorithm, timestamps, trial)
            assert code == DEFER or (want is not None and (code == TRUE) == want), (seed, ulps)
            checked += code != DEFER
    assert checked >= 100


def test_ks_test_alone_on_gappy_ten_second_data_with_level_shifts() -> None:
    """ks_test's vote flips with the size of a shift in the last ten minutes (its tail moves nothing):
    gappy 10 s series, shifts from none to large, the scalar vote is the reference's or deferred."""
    votes = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        timestamps = NOW - 10.0 * np.arange(1439, -1, -1)
        values = rng.normal(100.0, 5.0, 1440)
        values[-60:] += rng.uniform(0.0, 15.0)
        keep = rng.random(1440) < 0.85
        timestamps, values = timestamps[keep], values[keep]
        code, want = _both_votes("ks_test", timestamps, values)
        assert code == DEFER or (want is not None and (code == TRUE) == want), seed
        votes.append(want)
    assert True in votes and False in votes


def test_the_histogram_defers_bins_too_narrow_for_its_edges() -> None:
    _, timestamps, values = next(case for case in EDGE_CASES if case[0] == "flat but one ulp/60s")
    assert single.histogram_bins(single.Alone(timestamps, values, NOW, FULL_DURATION)) == DEFER
    _, timestamps, values = next(case for case in EDGE_CASES if case[0] == "huge/60s")
    assert single.histogram_bins(single.Alone(timestamps, values, NOW, FULL_DURATION)) == DEFER


def _reference(series: Series, name: str, chosen: config.Settings) -> Verdict:
    """The reference's verdict on a series past the filters (single.evaluate's contract)."""
    return consensus(run_ensemble(series, chosen, NOW, name), series, chosen)


@pytest.mark.parametrize("needed", [1, 6, 9, 10])
@pytest.mark.parametrize("optimized", [True, False])
def test_a_series_alone_gets_the_reference_verdict_and_counts_its_fallbacks(
    needed: int, optimized: bool, load_settings: Callable[..., config.Settings]
) -> None:
    chosen = load_settings().replace(CONSENSUS=needed, RUN_OPTIMIZED_WORKFLOW=optimized)
    for label, timestamps, values in EDGE_CASES:
        series = Series(timestamps, values, int(timestamps[-1]), float(values[-1]))
        deferred: Counter[str] = Counter()
        got = single.evaluate(series, label, chosen, NOW, None, deferred)
        assert got == _reference(series, label, chosen), label
        assert set(deferred) <= {"histogram_bins"}, label
    _, timestamps, values = next(case for case in EDGE_CASES if case[0] == "flat but one ulp/60s")
    series = Series(timestamps, values, NOW, float(values[-1]))
    deferred = Counter()
    single.evaluate(series, "flat but one ulp", chosen, NOW, None, deferred)
    assert deferred == Counter({"histogram_bins": 1})


def test_a_scalar_detector_that_raises_leaves_the_vote_to_the_reference(
    load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(alone: single.Alone) -> int:
        raise FloatingPointError("simulated")

    monkeypatch.setitem(single.SCALAR, "grubbs", broken)
    chosen = load_settings().replace(CONSENSUS=1)
    for label, timestamps, values in EDGE_CASES[:30]:
        series = Series(timestamps, values, int(timestamps[-1]), float(values[-1]))
        deferred: Counter[str] = Counter()
        assert single.evaluate(series, label, chosen, NOW, None, deferred) == _reference(series, label, chosen)
        assert deferred["grubbs"] == 1


def test_lengths_shared_by_few_series_are_analysed_alone_and_the_rest_in_blocks(
    load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = []
    blocks = []
    monkeypatch.setattr(single, "evaluate", lambda one, *a: alone.append(len(one)) or _reference(one, a[0], a[1]))
    real_block = batch.evaluate_block
    monkeypatch.setattr(batch, "evaluate_block", lambda block, s: blocks.append(block.values.shape) or real_block(
        block, s))
    rng = np.random.default_rng(3)
    series = []
    for length, count in ((100, batch.ALONE_BELOW - 1), (200, batch.ALONE_BELOW), (300, 1)):
        for _ in range(count):
            timestamps = NOW - 60.0 * np.arange(length - 1, -1, -1)
            values = rng.normal(0.0, 1.0, length)
            series.append(Series(timestamps, values, NOW, float(values[-1])))
    names = [f"metrics.{i}" for i in range(len(series))]
    engine.analyse(series, names, load_settings(), NOW)
    assert sorted(alone) == [100] * (batch.ALONE_BELOW - 1) + [300]
    assert blocks == [(batch.ALONE_BELOW, 200)]


def test_the_per_length_caches_stay_bounded_as_new_lengths_arrive() -> None:
    from skyline_analyzer.detection import batched

    first_critical, first_weights = batched.grubbs_critical(1441), batched._ewm_weights(1441)[0].copy()
    for n in range(3, 3 + 3 * batched._CACHED_LENGTHS):
        batched.grubbs_critical(n)
        batched._ewm_weights(n)
        assert len(batched._GRUBBS_CRITICAL) <= batched._CACHED_LENGTHS
        assert len(batched._EWM_WEIGHTS) <= batched._CACHED_LENGTHS
    # Emptied and refilled, the constants come back the same.
    batched._GRUBBS_CRITICAL.clear()
    batched._EWM_WEIGHTS.clear()
    assert batched.grubbs_critical(1441) == first_critical
    assert np.array_equal(batched._ewm_weights(1441)[0], first_weights)
