"""The NAB scorer of benchmarks/nab_scoring.py on hand-made labels with scores worked out by hand."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "nab_scoring", Path(__file__).resolve().parent.parent / "benchmarks" / "nab_scoring.py")
assert _SPEC is not None and _SPEC.loader is not None
nab_scoring = importlib.util.module_from_spec(_SPEC)
# dataclasses look their module up by name while the class is built.
sys.modules.setdefault("nab_scoring", nab_scoring)
_SPEC.loader.exec_module(nab_scoring)
PROFILES = {p.name: p for p in nab_scoring.PROFILES}

#: 1,000 rows: probation is the first 150; windows at rows 300..399 and 700..799.
TRUTH = nab_scoring.Truth(rows=1000, windows=((300, 399), (700, 799)))


def scores(*rows: int, length: int = 1000) -> np.ndarray:
    out = np.zeros(length)
    out[list(rows)] = 1.0
    return out


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_null_and_perfect_detectors_score_0_and_100(name: str) -> None:
    profile = PROFILES[name]
    assert nab_scoring.corpus_score([TRUTH], [np.zeros(1000)], profile).score == pytest.approx(0.0)
    assert nab_scoring.corpus_score([TRUTH], [scores(300, 700)], profile).score == pytest.approx(100.0)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_one_stray_detection_before_any_window_costs_the_profiles_fp_weight(name: str) -> None:
    profile = PROFILES[name]
    got = nab_scoring.corpus_score([TRUTH], [scores(200, 300, 700)], profile)
    null, perfect = -2 * profile.fn, 2 * profile.tp
    assert got.raw == pytest.approx(2 * profile.tp - profile.fp)
    assert got.score == pytest.approx(100 * (got.raw - null) / (perfect - null))


def test_detections_in_probation_count_for_nothing() -> None:
    profile = PROFILES["standard"]
    assert nab_scoring.corpus_score([TRUTH], [scores(10, 300, 700)], profile).score == pytest.approx(100.0)


def test_a_late_detection_earns_less_and_only_the_earliest_in_a_window_counts() -> None:
    profile = PROFILES["standard"]
    # Row 399 is the last of its window: position -1/100, sigma = 2 / (1 + e^-0.05) - 1.
    late = (2 / (1 + math.exp(-0.05)) - 1) / nab_scoring.scaled_sigmoid(-1.0)
    got = nab_scoring.corpus_score([TRUTH], [scores(399, 700, 750)], profile)
    assert got.raw == pytest.approx(late + 1.0)


def test_a_detection_just_after_a_window_costs_less_than_a_stray_one() -> None:
    profile = PROFILES["standard"]
    # Row 420 is 21 rows past the window's right edge (width 100): position 21 / 99.
    after = nab_scoring.scaled_sigmoid(21 / 99) * profile.fp
    got = nab_scoring.corpus_score([TRUTH], [scores(300, 420, 700)], profile)
    assert -profile.fp < after < 0
    assert got.raw == pytest.approx(2.0 + after)


def test_the_threshold_sweep_keeps_no_detection_when_detections_only_cost() -> None:
    profile = PROFILES["reward_low_FP_rate"]
    got = nab_scoring.corpus_score([TRUTH], [scores(200, 210, 220)], profile)
    assert got.threshold == math.inf
    assert got.score == pytest.approx(0.0)


def test_a_window_inside_probation_is_not_scored_but_counts_for_perfect() -> None:
    truth = nab_scoring.Truth(rows=1000, windows=((20, 40), (300, 399)))
    profile = PROFILES["standard"]
    got = nab_scoring.corpus_score([truth], [scores(300)], profile)
    # Null -1 (one scored window), perfect 2 (both labelled windows), raw 1.
    assert got.score == pytest.approx(100 * (1 - -1) / (2 - -1))


def test_windows_from_timestamps_must_be_rows() -> None:
    truth = nab_scoring.Truth.from_timestamps([0, 300, 600, 900], [(300, 600)])
    assert truth.windows == ((1, 2),)
    with pytest.raises(KeyError):
        nab_scoring.Truth.from_timestamps([0, 300, 600], [(301, 600)])
