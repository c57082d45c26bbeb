"""10,000 hypothesis-generated series, many built to sit on a threshold: fast and reference agree on all.

Each example is a batch of 50 series (so equal lengths share blocks) under one drawn configuration. A
series is drawn as a shape plus a seed, then optionally pushed onto the decision boundary of one
algorithm: the last values are set to the float at which the reference detector's vote flips
(bisection on the float's bit pattern, so the two neighbours straddle the boundary), then moved a few
ulps either way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyline_analyzer import config
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.algorithms import DETECTORS
from skyline_analyzer.detection.series import Series

NOW = 1_700_000_000
FULL_DURATION = 86400
BATCH = 50
EXAMPLES = 200
SHAPES = ("noise", "integers", "binary", "constant_nudged", "tiny_variance", "huge_offset", "spike", "seasonal")
LENGTHS = (1, 2, 3, 4, 5, 8, 21, 60, 61, 64, 120, 300, 1440)


def _values(shape: str, length: int, rng: np.random.Generator) -> np.ndarray:
    if shape == "noise":
        return rng.normal(100.0, 5.0, length)
    if shape == "integers":
        return rng.integers(0, 6, length).astype(np.float64)
    if shape == "binary":
        return (rng.random(length) < 0.05).astype(np.float64)
    if shape == "constant_nudged":
        values = np.full(length, float(rng.choice([0.0, 1.0, 0.1, 1e6, -3.7])))
        where = -1 if rng.random() < 0.5 else int(rng.integers(0, length))
        for _ in range(int(rng.integers(1, 4))):
            values[where] = np.nextafter(values[where], np.inf)
        return values
    if shape == "tiny_variance":
        return 1e6 + rng.normal(0.0, 1e-9, length)
    if shape == "huge_offset":
        return 1.7e9 + rng.normal(0.0, 1.0, length).round(2)
    if shape == "spike":
        values = rng.normal(50.0, 2.0, length)
        values[-3:] += rng.choice([3.0, 6.0, 10.0, 40.0])
        return values
    return 500.0 + 200.0 * np.sin(np.arange(length) / 30.0) + rng.normal(0.0, 10.0, length)


def _timestamps(length: int, step: int, lag: int, rng: np.random.Generator, shuffled: bool) -> np.ndarray:
    end = NOW - lag
    timestamps = end - step * np.arange(length - 1, -1, -1, dtype=np.float64)
    if shuffled and length > 2:
        # The Analyzer never sorts: out-of-order datapoints reach the algorithms as stored.
        rng.shuffle(timestamps[:-1])
    return timestamps


def _float_bits(x: float) -> int:
    """A monotone integer key of a float (negative floats mirrored below zero)."""
    bits = int(np.float64(x).view(np.int64))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def _bits_float(key: int) -> float:
    bits = key if key >= 0 else (-key) | -0x8000000000000000
    return float(np.int64(bits).view(np.float64))


def _to_boundary(timestamps: np.ndarray, values: np.ndarray, algorithm: str, tail: int) -> np.ndarray | None:
    """``values`` with the last ``tail`` values set where ``algorithm``'s reference vote flips, if it does."""
    detector = DETECTORS[algorithm]

    def vote(x: float) -> bool:
        trial = values.copy()
        trial[-tail:] = x
        with np.errstate(all="ignore"):
            try:
                return bool(detector(timestamps, trial, now=NOW, full_duration=FULL_DURATION))
            except Exception:
                return False

    centre = float(np.median(values))
    spread = float(np.std(values)) or abs(centre) * 1e-6 or 1e-6
    low = centre
    for reach in (1.0, 3.0, 10.0, 100.0, 1e4):
        high = centre + reach * spread
        if vote(high) != vote(low):
            break
    else:
        return None
    low_key, high_key = _float_bits(low), _float_bits(high)
    low_vote = vote(low)
    while abs(high_key - low_key) > 1:
        middle = (low_key + high_key) // 2
        if vote(_bits_float(middle)) == low_vote:
            low_key = middle
        else:
            high_key = middle
    result = values.copy()
    result[-tail:] = _bits_float(high_key)
    return result


@st.composite
def series_specs(draw: st.DrawFn) -> tuple:
    return (
        draw(st.sampled_from(SHAPES)),
        draw(st.sampled_from(LENGTHS) | st.integers(1, 200)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from((60, 60, 60, 10, 1))),
        draw(st.sampled_from((0, 0, 0, 30, 299, 300, 499, 500, 501))),
        draw(st.integers(0, 9)) == 0,
        # Two series in three keep their shape; the third is moved onto one algorithm's boundary.
        draw(st.none() | st.none() | st.sampled_from(sorted(DETECTORS))),
        draw(st.sampled_from((1, 3))),
        draw(st.integers(-2, 2)),
    )


def build(spec: tuple) -> Series:
    shape, length, seed, step, lag, shuffled, boundary_of, tail, ulps = spec
    rng = np.random.default_rng(seed)
    values = _values(shape, length, rng)
    timestamps = _timestamps(length, step, lag, rng, shuffled)
    if boundary_of is not None and length <= 300 and boundary_of != "ks_test":
        moved = _to_boundary(timestamps, values, boundary_of, min(tail, length))
        if moved is not None:
            values = moved
            for _ in range(abs(ulps)):
                values[-1] = np.nextafter(values[-1], np.inf if ulps > 0 else -np.inf)
    pairs = [[int(t) if t.is_integer() else t, v] for t, v in zip(timestamps.tolist(), values.tolist(), strict=True)]
    return Series.from_pairs(pairs)


@st.composite
def configurations(draw: st.DrawFn) -> dict:
    if draw(st.booleans()):
        return {"RUN_OPTIMIZED_WORKFLOW": draw(st.booleans())}
    algorithms = draw(st.permutations(sorted(DETECTORS)))
    algorithms = algorithms[: draw(st.integers(1, len(algorithms)))]
    return {
        "ALGORITHMS": list(algorithms),
        "CONSENSUS": draw(st.integers(1, len(algorithms))),
        "RUN_OPTIMIZED_WORKFLOW": draw(st.booleans()),
        "BOREDOM_SET_SIZE": draw(st.sampled_from((1, 1, 2))),
        "MAX_TOLERABLE_BOREDOM": draw(st.sampled_from((100, 100, 5))),
    }


def test_fast_and_reference_agree_on_10000_random_series(load_settings: Callable[..., config.Settings]) -> None:
    base = load_settings()
    analysed = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(st.lists(series_specs(), min_size=BATCH, max_size=BATCH), configurations())
    def agree(specs: list[tuple], overrides: dict) -> None:
        series = [build(spec) for spec in specs]
        names = [f"metrics.random.{i}" for i in range(len(series))]
        chosen = base.replace(**overrides)
        fast = engine.analyse(series, names, chosen.replace(ANALYZER_ENGINE="fast"), NOW)
        reference = engine.analyse(series, names, chosen.replace(ANALYZER_ENGINE="reference"), NOW)
        for one, got, want in zip(specs, fast, reference, strict=True):
            assert got == want, one
        analysed.append(len(series))

    agree()
    assert sum(analysed) >= EXAMPLES * BATCH
