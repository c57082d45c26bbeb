"""The scoring of the Numenta Anomaly Benchmark (Lavin & Ahmad, 2015), written for this project.

Pure functions over labels and detections (no files, no detector): ``benchmarks/nab.py`` feeds them.

The rules, per data file of ``n`` rows:

* the first ``min(floor(0.15 n), 750)`` rows are the *probationary* period: detections there count for
  nothing, and a window lying wholly inside it is not scored;
* each labelled window ``[left, right]`` (row indices, inclusive, ``width = right - left + 1``) is worth
  ``-A_FN`` if nothing in it is detected, else ``A_TP * sigma(p) / sigma(-1)`` for its *best* (earliest)
  detection at relative position ``p = -(right - i + 1) / width``, where ``sigma(p) = 2 / (1 + e^(5p)) - 1``
  is the scaled sigmoid (``sigma(p) = -1`` for ``p >= 3``): an early detection scores ``A_TP``, one at the
  right edge about nothing;
* every detection outside a window costs ``A_FP * sigma(p)``, which is negative: ``p = 3`` (the full cost
  ``-A_FP``) before the first window, else ``|prev_right - i| / (prev_width - 1)`` after the previous one,
  so a late detection just after a window costs less than a stray one far from any.

A detector's anomaly scores are thresholded (``score >= threshold`` is a detection); the threshold is
swept over the distinct scores of the whole corpus and the best corpus total kept, per profile. The final
score is ``100 * (raw - null) / (perfect - null)``: ``null`` is the best total of a detector that never
distinguishes rows (a constant score), ``perfect`` is ``A_TP`` times the number of labelled windows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Share of a file's rows in its probationary period, and the cap on that period in rows.
PROBATION_SHARE = 0.15
PROBATION_CAP = 750


@dataclass(frozen=True)
class Profile:
    """An application profile: the weights of true positives, false positives and false negatives."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def scaled_sigmoid(position: float) -> float:
    """``2 / (1 + e^(5 p)) - 1``, and exactly -1 from ``p = 3`` on (far past a window)."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int) -> int:
    """Rows at the start of a file whose detections are not scored."""
    return min(math.floor(PROBATION_SHARE * rows), PROBATION_CAP)


@dataclass(frozen=True)
class Truth:
    """One file's labels as row indices: ``windows`` are ``(left, right)``, inclusive, in order."""

    rows: int
    windows: tuple[tuple[int, int], ...]

    @classmethod
    def from_timestamps(cls, timestamps: Sequence[int], windows: Sequence[tuple[int, int]]) -> Truth:
        """Windows given as (first, last) timestamps that must be row timestamps of the file."""
        index = {int(t): i for i, t in enumerate(timestamps)}
        spans = sorted((index[int(start)], index[int(end)]) for start, end in windows)
        for (_, right), (left, _) in itertools.pairwise(spans):
            if left <= right:
                raise ValueError("overlapping windows")
        return cls(len(timestamps), tuple(spans))


@dataclass(frozen=True)
class RowWeights:
    """Per row of one file under one profile: its window (-1 outside) and its score if detected."""

    window: np.ndarray
    weight: np.ndarray
    probation: int
    scored_windows: tuple[int, ...]


def row_weights(truth: Truth, profile: Profile) -> RowWeights:
    """What a detection at each row is worth (the window's TP score, or the FP cost outside windows)."""
    window = np.full(truth.rows, -1, dtype=np.int64)
    weight = np.empty(truth.rows)
    max_tp = scaled_sigmoid(-1.0)
    previous: tuple[int, int] | None = None
    spans = list(truth.windows)
    for i in range(truth.rows):
        while spans and spans[0][1] < i:
            previous = spans.pop(0)
        if spans and spans[0][0] <= i:
            left, right = spans[0]
            width = right - left + 1
            window[i] = len(truth.windows) - len(spans)
            weight[i] = scaled_sigmoid(-(right - i + 1) / width) * profile.tp / max_tp
        else:
            if previous is None:
                position = 3.0
            else:
                left, right = previous
                position = abs(right - i) / (right - left)
            weight[i] = scaled_sigmoid(position) * profile.fp
    probation = probation_length(truth.rows)
    scored = tuple(w for w, (_, right) in enumerate(truth.windows) if right >= probation)
    return RowWeights(window, weight, probation, scored)


def raw_score(weights: RowWeights, detected: np.ndarray, profile: Profile) -> float:
    """One file's total for a boolean detection per row."""
    live = detected.copy()
    live[: weights.probation] = False
    outside = live & (weights.window < 0)
    total = float(weights.weight[outside].sum())
    for w in weights.scored_windows:
        hits = live & (weights.window == w)
        total += float(weights.weight[hits].max()) if hits.any() else -profile.fn
    return total


def null_raw(weights: Sequence[RowWeights], profile: Profile) -> float:
    """The null detector's best corpus total: nothing detected, or everything scored detected."""
    nothing = -profile.fn * sum(len(w.scored_windows) for w in weights)
    everything = sum(raw_score(w, np.ones(w.window.shape[0], dtype=bool), profile) for w in weights)
    return max(nothing, everything)


@dataclass(frozen=True)
class Score:
    """One profile's result: the normalised score, the raw total and the threshold that gave it."""

    profile: Profile
    score: float
    raw: float
    threshold: float


def corpus_score(truths: Sequence[Truth], scores: Sequence[np.ndarray], profile: Profile) -> Score:
    """The normalised score of per-row anomaly scores over a corpus, at the best threshold.

    Thresholds are the distinct scores, highest first (plus one above them all: no detection); the
    first best total wins a tie, so the higher threshold is kept.
    """
    weights = [row_weights(truth, profile) for truth in truths]
    distinct = np.unique(np.concatenate([s[w.probation :] for s, w in zip(scores, weights, strict=True)]))
    best_raw = -profile.fn * sum(len(w.scored_windows) for w in weights)
    best_threshold = math.inf
    for threshold in distinct[::-1].tolist():
        raw = sum(raw_score(w, s >= threshold, profile) for w, s in zip(weights, scores, strict=True))
        if raw > best_raw:
            best_raw, best_threshold = raw, threshold
    null = null_raw(weights, profile)
    perfect = profile.tp * sum(len(t.windows) for t in truths)
    return Score(profile, 100.0 * (best_raw - null) / (perfect - null), best_raw, best_threshold)
