"""The second stage: checks of a candidate series against a longer history, seasonality taken into account.

* :func:`recheck` (``seasonal_nearest``): is the series' tail unusual for the time of day, compared with the
  same time on earlier days? It removes the first stage's seasonal false positives (a daily peak outside a
  day-long window's three sigmas).
* :func:`reanalyse` (``deseasonalised_ensemble``): the same ensemble, at the same ``CONSENSUS``, run on the
  longer history (the recent points averaged to its resolution) with its daily profile removed
  (:func:`deseasonalise`). It finds what the day-long window hides: a value ordinary for the day but not
  for the time of day, a shift the day's own spread absorbs.
* :func:`judge` decides a batch of candidates with them: a metric the first stage *flagged* by
  ``seasonal_nearest`` alone; a metric some of its algorithms voted for but short of ``CONSENSUS``
  (*nearly flagged*) by ``seasonal_nearest`` first, then, only if it is unusual for the time of day, by
  ``deseasonalised_ensemble`` (the cheap check first, as the first stage's early exit does).

The checks in detail:

Three-sigma algorithms over the last ``FULL_DURATION`` see a daily peak as an outlier; the second stage
asks a seasonal question instead, on a longer history kept at a coarser resolution (``history``: buckets
of :attr:`Parameters.resolution` seconds over :attr:`Parameters.duration`, see :func:`downsample`).

The *seasonal neighbours* of now are the buckets within :attr:`Parameters.window` seconds of the same
phase of the period (:attr:`Parameters.period`, a day) on each earlier period. The *tail* is the mean of
the last three points of the recent series, as the first stage's algorithms use. For each earlier period,
the distance from the tail to its closest neighbour; the statistic is the median of these distances over
the periods, in robust standard deviations of the neighbours (``1.4826 * MAD``; 1.4826 makes the MAD a
standard deviation for normal data), and the candidate is anomalous above :attr:`Parameters.threshold`.
In words: on most earlier days, was there a value like this near this time? The closest neighbour lets a
short daily peak pass (every day had one, though an hour's window holds mostly ordinary values); the
median over the days tolerates a day or two that were themselves anomalous. The spread has a floor,
:data:`MIN_SPREAD` of the neighbours' median magnitude, so that neighbours which barely vary (a flat
night, a quantised counter) do not turn a negligible difference into an infinite score.

When it cannot judge (fewer than :attr:`Parameters.min_periods` earlier periods with neighbours) the
decision is ``None``: the caller keeps the first stage's verdict. Every decision carries the check's
name, the statistic, the threshold, the number of neighbours and a one-line reason (docs/second-stage.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.series import Series

#: Scales the median absolute deviation to the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
#: The checks' names, as reported with every decision.
CHECK = "seasonal_nearest"
REANALYSIS = "deseasonalised_ensemble"
#: Points of the recent series averaged into the tail (the first stage's algorithms use three).
TAIL_POINTS = 3


#: The neighbours' spread never counts as less than this share of their median's magnitude.
MIN_SPREAD = 0.01


@dataclass(frozen=True)
class Parameters:
    """The stage's parameters: seconds, except ``min_periods`` and ``threshold`` (settings ``SECOND_STAGE_*``)."""

    duration: float
    resolution: float
    period: float
    window: float
    min_periods: int
    threshold: float
    min_spread: float = MIN_SPREAD

    @classmethod
    def from_settings(cls, settings: Any) -> Parameters:
        return cls(settings.SECOND_STAGE_DURATION, settings.SECOND_STAGE_RESOLUTION, settings.SECOND_STAGE_PERIOD,
                   settings.SECOND_STAGE_WINDOW, settings.SECOND_STAGE_MIN_PERIODS, settings.SECOND_STAGE_THRESHOLD)


@dataclass(frozen=True)
class Decision:
    """Whether a candidate is anomalous on the longer history, and why: check, statistic, threshold.

    For ``seasonal_nearest``, ``statistic`` is the robust z-score of the tail among ``neighbours`` seasonal
    neighbours; for ``deseasonalised_ensemble``, the votes of the ensemble (its algorithms that did not vote
    False) against ``CONSENSUS``, on ``neighbours`` points re-analysed (with the early exit on, the
    algorithms it skipped count as False: for a normal decision the votes are a lower bound).
    """

    anomalous: bool
    check: str
    statistic: float
    threshold: float
    neighbours: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        """The decision as ``anomalies.json``, the run report and the alerts carry it."""
        # JSON has no infinity: an unbounded score (neighbours all equal to 0) is reported as null.
        statistic = round(self.statistic, 4) if np.isfinite(self.statistic) else None
        return {"check": self.check, "anomalous": self.anomalous, "statistic": statistic,
                "threshold": self.threshold, "neighbours": self.neighbours, "reason": self.reason}


def downsample(timestamps: np.ndarray, values: np.ndarray, resolution: float,
               after: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Complete buckets of ``resolution`` seconds later than ``after``: (bucket starts, means).

    A bucket is complete once a point of a later bucket exists, so the bucket holding the last point is
    left out (it may still grow). ``timestamps`` need not be sorted.
    """
    if timestamps.shape[0] == 0:
        return np.empty(0), np.empty(0)
    starts = np.floor(timestamps / resolution) * resolution
    current = starts.max()
    keep = (starts < current) & (starts > after)
    starts, kept = starts[keep], values[keep]
    buckets, inverse = np.unique(starts, return_inverse=True)
    sums = np.bincount(inverse, weights=kept, minlength=buckets.shape[0])
    counts = np.bincount(inverse, minlength=buckets.shape[0])
    return buckets, sums / np.maximum(counts, 1)


def seasonal_neighbours(timestamps: np.ndarray, now: float, parameters: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``timestamps`` near ``now``'s phase on earlier periods within the duration, grouped by
    period (stable within one), and the period each is from (1 for the period before, ...). The current
    period is excluded: its points are the ones being judged.
    """
    period, window = parameters.period, parameters.window
    ago = now - timestamps
    periods = np.rint(ago / period)
    near = (ago > period - window) & (ago <= parameters.duration + window) & (np.abs(ago - periods * period) <= window)
    positions = np.flatnonzero(near)
    # A copy in time order gives each period's positions together already; a copy is input, so they are
    # put in order all the same (a stable sort of a sorted array is cheap).
    order = np.argsort(periods[positions], kind="stable")
    return positions[order], periods[positions][order]


def recheck(history: tuple[np.ndarray, np.ndarray], recent: tuple[np.ndarray, np.ndarray],
            parameters: Parameters) -> Decision | None:
    """The decision on a candidate: ``history`` is the longer, downsampled series, ``recent`` the series
    the first stage analysed (time order, finite, not empty); ``None`` when it cannot judge."""
    return nearest_block(history[0], history[1][np.newaxis], recent[1][np.newaxis, -TAIL_POINTS:],
                         float(recent[0][-1]), parameters)[0]


def nearest_block(timestamps: np.ndarray, values: np.ndarray, tails: np.ndarray, now: float,
                  parameters: Parameters) -> list[Decision | None]:
    """:func:`recheck` of several candidates at once: row ``i`` of ``values`` is a history on the shared
    ``timestamps``, row ``i`` of ``tails`` the last points of its recent series (all at ``now``). Each
    statistic is computed with the same operations as for the candidate alone, so the decisions are the same.
    """
    threshold = float(parameters.threshold)
    positions, periods = seasonal_neighbours(timestamps, now, parameters)
    changes = np.ones(periods.shape[0], dtype=bool)
    np.not_equal(periods[1:], periods[:-1], out=changes[1:])
    starts = np.flatnonzero(changes)
    days = int(starts.shape[0])
    if days < parameters.min_periods:
        return [None] * values.shape[0]
    count = int(positions.shape[0])
    neighbours = values[:, positions]
    tail = np.add.reduce(tails, axis=1) / tails.shape[1]  # np.mean's operations, without its overheads
    # The tail's distance to the closest neighbour of each earlier day; the median over the days.
    distance = _medians(np.minimum.reduceat(np.abs(neighbours - tail[:, np.newaxis]), starts, axis=1))
    median = _medians(neighbours)
    mad = MAD_TO_SIGMA * _medians(np.abs(neighbours - median[:, np.newaxis]))
    spread = np.maximum(mad, parameters.min_spread * np.abs(median))
    # Neighbours all equal to 0 have no spread: any distance is then unbounded.
    spread_ok = spread > 0
    statistic = np.where(spread_ok, distance / np.where(spread_ok, spread, 1.0), np.where(distance > 0, np.inf, 0.0))
    decisions: list[Decision | None] = []
    for one_tail, one in zip(tail.tolist(), statistic.tolist(), strict=True):
        anomalous = one > threshold
        verb = "anomalous" if anomalous else "normal"
        decisions.append(Decision(
            anomalous, CHECK, one, threshold, count,
            f"{verb} for the time of day: tail {one_tail:.6g} is {one:.2f} robust sigmas from the closest of "
            f"{count} neighbours on {days} earlier days (threshold {threshold:g})"))
    return decisions


def _medians(rows: np.ndarray) -> np.ndarray:
    """``np.median(rows, axis=1)`` for short rows without its overheads: the middle value of each sorted
    row, or the mean of the middle two (added, then halved, as ``np.mean`` of two values does)."""
    ordered = np.sort(rows, axis=1)
    middle = ordered.shape[1] // 2
    if ordered.shape[1] % 2:
        return ordered[:, middle]
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2


def daily_profile(history: tuple[np.ndarray, np.ndarray], now: float,
                  parameters: Parameters) -> np.ndarray | None:
    """The seasonal profile: for each phase bucket of the period (``period / resolution`` of them), the median
    of the history's buckets at that phase on earlier periods (older than one period before ``now``); a phase
    no earlier period has takes the median of the others. ``None`` with fewer than ``min_periods`` earlier
    periods. The current period is left out: its points are the ones being judged.
    """
    timestamps, values = history
    earlier = timestamps <= now - parameters.period
    timestamps, values = timestamps[earlier], values[earlier]
    periods = np.unique(np.floor((now - timestamps) / parameters.period))
    if periods.shape[0] < parameters.min_periods:
        return None
    phase = _phase(timestamps, parameters)
    order = np.lexsort((values, phase))
    phase, values = phase[order], values[order]
    starts = np.flatnonzero(np.r_[True, phase[1:] != phase[:-1]])
    counts = np.diff(np.r_[starts, phase.shape[0]])
    # The median of each phase's sorted run: the mean of its middle one or two values.
    medians = (values[starts + (counts - 1) // 2] + values[starts + counts // 2]) / 2
    profile = np.full(_phases(parameters), np.median(medians))
    profile[phase[starts]] = medians
    return profile


def deseasonalise(history: tuple[np.ndarray, np.ndarray], recent: tuple[np.ndarray, np.ndarray], now: float,
                  parameters: Parameters) -> tuple[np.ndarray, np.ndarray] | None:
    """The series :func:`reanalyse` analyses, minus the :func:`daily_profile` at each point's phase: the
    history's buckets, then the recent points newer than its last bucket (the minutes the copy does not
    hold yet) averaged into buckets of the same resolution, the last one holding the points so far.

    The recent points are averaged because a raw point varies more than a bucket's mean (about
    ``sqrt(resolution / step)`` times): appended raw, the newest points would look like outliers among the
    buckets. A recent bucket is stamped with its newest point's time, so the series is as fresh as the data.
    ``None`` when there is no profile.
    """
    profile = daily_profile(history, now, parameters)
    if profile is None:
        return None
    timestamps, values = history
    fresh = recent[0] >= timestamps[-1] + parameters.resolution
    fresh_t, fresh_v = recent[0][fresh], recent[1][fresh]
    phases = _phase(timestamps, parameters)
    if fresh_t.shape[0]:
        starts, inverse = np.unique(np.floor(fresh_t / parameters.resolution), return_inverse=True)
        means = np.bincount(inverse, weights=fresh_v) / np.bincount(inverse)
        newest = np.zeros(starts.shape[0])
        np.maximum.at(newest, inverse, fresh_t)
        timestamps = np.concatenate([timestamps, newest])
        values = np.concatenate([values, means])
        phases = np.concatenate([phases, _phase(starts * parameters.resolution, parameters)])
    return timestamps, values - profile[phases]


def reanalyse(items: Sequence[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
              parameters: Parameters, settings: Settings, now: float, names: Sequence[str]) -> list[Decision | None]:
    """``deseasonalised_ensemble`` of each ``(history, recent)``: ``settings``' ensemble at its ``CONSENSUS``
    on the longer history from :func:`deseasonalise`; ``None`` where it cannot judge (too few earlier periods,
    or the re-analysed series is filtered out: too short, stale, boring). The series go to the engine in one
    call, so that those of one length are evaluated as one block (``names`` are for its error reports)."""
    series = [deseasonalise(history, recent, now, parameters) for history, recent in items]
    judged = [i for i, one in enumerate(series) if one is not None]
    outcomes = engine.analyse([_as_series(series[i]) for i in judged], [names[i] for i in judged], settings, now)
    decisions: list[Decision | None] = [None] * len(items)
    count = len(settings.ALGORITHMS)
    for i, outcome in zip(judged, outcomes, strict=True):
        if outcome.verdict is None:
            continue
        points = int(series[i][0].shape[0])  # type: ignore[index]
        votes = count - outcome.verdict.ensemble.count(False)
        anomalous = outcome.verdict.anomalous
        verb = "anomalous" if anomalous else "normal"
        decisions[i] = Decision(anomalous, REANALYSIS, float(votes), float(settings.CONSENSUS), points,
                                f"{verb} with the daily profile removed: {votes} of {count} algorithms on {points} "
                                f"points of the longer history (consensus {settings.CONSENSUS})")
    return decisions


def _as_series(pair: tuple[np.ndarray, np.ndarray] | None) -> Series:
    assert pair is not None
    timestamps, values = pair
    return Series(timestamps, values, float(timestamps[-1]), float(values[-1]))


@dataclass(frozen=True)
class Candidate:
    """A metric for :func:`judge`: its longer history (downsampled), the series the first stage analysed
    (time order, finite, not empty) and whether the first stage flagged it (else it nearly did)."""

    name: str
    history: tuple[np.ndarray, np.ndarray]
    recent: tuple[np.ndarray, np.ndarray]
    flagged: bool


def judge(candidates: Sequence[Candidate], parameters: Parameters, settings: Settings,
          now: float) -> list[Decision | None]:
    """The decision on each candidate; ``None`` where the stage cannot judge it (the caller keeps the first
    stage's verdict: a flagged metric reported, a nearly flagged one not).

    A flagged candidate: ``seasonal_nearest``. A nearly flagged one: ``seasonal_nearest``, and where that
    finds it unusual for the time of day, ``deseasonalised_ensemble`` decides (its reason then starts with
    the first check's statistic); where ``seasonal_nearest`` finds it normal, that is the decision. The
    re-analyses of the batch run in one engine call.
    """
    decisions = _nearest_all(candidates, parameters)
    further = [i for i, (c, d) in enumerate(zip(candidates, decisions, strict=True))
               if not c.flagged and d is not None and d.anomalous]
    if further:
        found = reanalyse([(candidates[i].history, candidates[i].recent) for i in further], parameters, settings,
                          now, [candidates[i].name for i in further])
        for i, decision in zip(further, found, strict=True):
            first = decisions[i]
            assert first is not None
            decisions[i] = None if decision is None else replace(decision, reason=(
                f"unusual for the time of day ({first.statistic:.2f} robust sigmas, threshold {first.threshold:g}) "
                f"and {decision.reason}"))
    return decisions


def _nearest_all(candidates: Sequence[Candidate], parameters: Parameters) -> list[Decision | None]:
    """:func:`recheck` of every candidate; those whose histories have the same timestamps and whose recent
    series end at the same time (a day's metrics on the keeper's grid, mostly) as one :func:`nearest_block`."""
    groups: dict[tuple[int, float, float, float, int], list[int]] = {}
    decisions: list[Decision | None] = [None] * len(candidates)
    for i, candidate in enumerate(candidates):
        times, recent = candidate.history[0], candidate.recent[0]
        if times.shape[0] == 0:
            continue  # nothing to compare with: not judged
        key = (times.shape[0], float(times[0]), float(times[-1]), float(recent[-1]), min(recent.shape[0], TAIL_POINTS))
        groups.setdefault(key, []).append(i)
    for (*_, now, _tail), members in groups.items():
        times = np.stack([candidates[i].history[0] for i in members])
        same = (times == times[0]).all(axis=1)
        block = [i for i, shared in zip(members, same.tolist(), strict=True) if shared]
        for i, shared in zip(members, same.tolist(), strict=True):
            if not shared:
                decisions[i] = recheck(candidates[i].history, candidates[i].recent, parameters)
        values = np.stack([candidates[i].history[1] for i in block])
        tails = np.stack([candidates[i].recent[1][-TAIL_POINTS:] for i in block])
        for i, decision in zip(block, nearest_block(times[0], values, tails, now, parameters), strict=True):
            decisions[i] = decision
    return decisions


def _phases(parameters: Parameters) -> int:
    return max(1, int(np.ceil(parameters.period / parameters.resolution)))


def _phase(timestamps: np.ndarray, parameters: Parameters) -> np.ndarray:
    """Each timestamp's phase bucket within the period (UTC: the period starts at the epoch)."""
    phases = np.floor((timestamps % parameters.period) / parameters.resolution).astype(np.intp)
    return np.minimum(phases, _phases(parameters) - 1)
