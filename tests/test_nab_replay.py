"""benchmarks/nab_replay.py replays the NAB protocol exactly as benchmarks/nab.py runs it.

Synthetic files (a daily cycle at 15-minute rows over six days, with spikes, a level shift and a flat
stretch the filters reject), so that the faithful default, an oracle and the seasonal second stage all
detect something and the 12 h expiry matters. Each replay from the cached ensembles must give the very
scores of the live protocol.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import nab  # noqa: E402
import nab_replay  # noqa: E402
from nab_scoring import Truth  # noqa: E402

STEP = 900
ROWS = 6 * 86400 // STEP


def _file(name: str, seed: int, spikes: dict[int, float], shift_at: int | None = None,
          flat: tuple[int, int] | None = None) -> nab.DataFile:
    rng = np.random.default_rng(seed)
    timestamps = 1_400_000_000.0 + STEP * np.arange(ROWS)
    values = 100 + 30 * np.sin(2 * np.pi * timestamps / 86400) + rng.normal(0, 3, ROWS)
    for row, size in spikes.items():
        values[row : row + 3] += size
    if shift_at is not None:
        values[shift_at:] += 60
    if flat is not None:
        values[flat[0]:flat[1]] = 7.0
    return nab.DataFile(name, timestamps, np.round(values, 1))


FILES = [
    _file("a/spiky.csv", 1, {200: 200, 230: 180, 420: -190, 500: 220}),
    _file("a/shift.csv", 2, {150: 170}, shift_at=380),
    _file("b/flat.csv", 3, {200: 180, 460: 190}, flat=(300, 430)),
]
TRUTHS = [Truth(ROWS, ((410, 440),)), Truth(ROWS, ((370, 400),)), Truth(ROWS, ((190, 210), (450, 470)))]


@pytest.fixture(scope="module")
def votes() -> list[np.ndarray]:
    return nab_replay.ensembles(FILES)


def _settings():
    return nab.detector_settings("fast")


def test_the_replay_of_the_faithful_default_is_the_live_protocol(votes) -> None:
    live = nab.detect(FILES, _settings())
    replayed = nab_replay.replay(FILES, votes, _settings().CONSENSUS)
    assert sum(s.sum() for s in live) >= 4, "the files must make the default detect, or nothing is compared"
    for one, other in zip(live, replayed, strict=True):
        np.testing.assert_array_equal(one, other)


@pytest.mark.parametrize("below", [0, 1, 2, 4])
def test_the_replay_of_an_oracle_is_the_live_protocol(votes, below: int) -> None:
    settings = _settings()
    inside = nab.inside_windows(TRUTHS)
    live = nab.detect(FILES, settings, nab._oracle(TRUTHS), settings.CONSENSUS - below)
    replayed = nab_replay.replay(FILES, votes, settings.CONSENSUS, lambda k, row, _f: bool(inside[k][row]),
                                 settings.CONSENSUS - below)
    for one, other in zip(live, replayed, strict=True):
        np.testing.assert_array_equal(one, other)
    for rows, score in zip(inside, live, strict=True):
        assert rows[score > 0].all()


@pytest.mark.parametrize("min_votes", [1, 2])
def test_the_replay_of_the_seasonal_second_stage_is_the_live_protocol(votes, min_votes: int) -> None:
    settings = _settings()
    live = nab.detect(FILES, settings, nab.stage_recheck(settings), min_votes)
    replayed = nab_replay.replay(FILES, votes, settings.CONSENSUS, nab_replay.stage_check(FILES), min_votes)
    assert any(not np.array_equal(a, b) for a, b in zip(live, nab.detect(FILES, settings), strict=True)), \
        "the second stage must change something, or it is not compared"
    for one, other in zip(live, replayed, strict=True):
        np.testing.assert_array_equal(one, other)


def test_the_votes_of_a_candidate_are_those_of_the_algorithms_the_early_exit_ran() -> None:
    t, f, raised = nab_replay.TRUE, nab_replay.FALSE, nab_replay.RAISED
    ensembles = np.array([
        [f, f, f, t, t, t, t],  # the third False ends it: the Trues after it never ran
        [t, f, f, t, f, t, t],  # True, then the third False at the fifth algorithm
        [raised, t, f, f, t, t, t],  # a raise is not a False; all seven run
        [t, t, t, t, t, f, f],
    ], dtype=np.int8)
    assert nab_replay.faithful_votes(ensembles, 5).tolist() == [0, 2, 5, 5]
    # with CONSENSUS 6 the second False ends it
    assert nab_replay.faithful_votes(ensembles, 6).tolist() == [0, 1, 2, 5]


def test_a_row_the_filters_reject_is_never_a_candidate(votes) -> None:
    flat = votes[2]
    # the flat stretch is Boring once its last MAX_TOLERABLE_BOREDOM (100) points are all equal
    assert (flat[399:430, 0] == nab_replay.NOT_ANALYSED).all()
    assert (flat[431:, 0] != nab_replay.NOT_ANALYSED).all()
    assert (votes[0][100:, 0] != nab_replay.NOT_ANALYSED).all()
