"""The second stage's decision on hand-made daily series (docs/second-stage.md)."""

from __future__ import annotations

import json

import numpy as np

from skyline_analyzer import schema, synthetic
from skyline_analyzer.analyzer import recheck
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine, second_stage
from skyline_analyzer.detection.series import Series

STEP = 300
SETTINGS = Settings({})
PARAMETERS = second_stage.Parameters.from_settings(SETTINGS)


def daily(days: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Five-minute points over ``days`` days: a daily peak at noon on noise."""
    timestamps = np.arange(0, days * 86400, STEP, dtype=np.float64)
    phase = (timestamps % 86400) / 86400
    noise = np.random.default_rng(seed).normal(0, 1, timestamps.shape[0])
    return timestamps, 10 + 50 * np.exp(-((phase - 0.5) ** 2) / 0.002) + noise


def candidate(timestamps: np.ndarray, values: np.ndarray, flagged: bool) -> second_stage.Candidate:
    """A candidate as the worker makes it: the history downsampled as Horizon keeps it, the last day."""
    history = second_stage.downsample(timestamps, values, PARAMETERS.resolution)
    recent = timestamps >= timestamps[-1] - 86400
    return second_stage.Candidate("series", history, (timestamps[recent], values[recent]), flagged)


def judged(timestamps: np.ndarray, values: np.ndarray) -> second_stage.Decision | None:
    """``seasonal_nearest`` of the series as a candidate."""
    one = candidate(timestamps, values, flagged=True)
    return second_stage.recheck(one.history, one.recent, PARAMETERS)


def test_downsample_averages_complete_buckets_only() -> None:
    timestamps = np.array([0, 300, 600, 900, 1200, 1250], dtype=np.float64)
    values = np.array([1, 3, 5, 7, 100, 100], dtype=np.float64)
    starts, means = second_stage.downsample(timestamps, values, 600)
    assert starts.tolist() == [0, 600] and means.tolist() == [2, 6]
    starts, means = second_stage.downsample(timestamps, values, 600, after=0)
    assert starts.tolist() == [600] and means.tolist() == [6]


def test_the_daily_peak_is_normal_for_the_time_of_day() -> None:
    timestamps, values = daily(8)
    noon = int(np.flatnonzero(timestamps == 7 * 86400 + 43200)[0]) + 1
    decision = judged(timestamps[:noon], values[:noon])
    assert decision is not None and not decision.anomalous
    assert decision.check == "seasonal_nearest"
    assert decision.statistic <= decision.threshold == 3.5
    assert decision.reason.startswith("normal for the time of day")


def test_a_peak_at_an_unusual_hour_is_anomalous_and_says_why() -> None:
    timestamps, values = daily(8)
    values = values.copy()
    values[-3:] = 60.0
    decision = judged(timestamps, values)
    assert decision is not None and decision.anomalous
    assert decision.statistic > 3.5
    assert decision.neighbours > 0
    record = decision.as_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["check"] == "seasonal_nearest" and record["threshold"] == 3.5


def reanalysed(timestamps: np.ndarray, values: np.ndarray, settings: Settings = SETTINGS,
               ) -> second_stage.Decision | None:
    """The re-analysis of the series as a nearly flagged candidate."""
    one = candidate(timestamps, values, flagged=False)
    return second_stage.reanalyse([(one.history, one.recent)], PARAMETERS, settings, float(timestamps[-1]),
                                  ["series"])[0]


def test_the_daily_profile_is_the_median_of_each_phase_on_earlier_days_only() -> None:
    day = 86400.0
    parameters = second_stage.Parameters(7 * day, 21600, day, 0, 3, 3.5)  # four 6 h phases a day
    timestamps = np.arange(0, 5 * day, 21600, dtype=np.float64)
    values = np.array([1, 2, 3, 4, 3, 2, 9, 4, 5, 2, 3, 4, 7, 2, 3, 40, 100, 100, 100, 100], dtype=np.float64)
    now = float(timestamps[-1])
    # the last day's own points (the 100s) are left out; phase 3 has 4, 4, 4 and 40 on earlier days
    profile = second_stage.daily_profile((timestamps, values), now, parameters)
    assert profile is not None and profile.tolist() == [4, 2, 3, 4]
    # without phase 2 on earlier days, the phase takes the median of the others
    gappy = np.isin(np.arange(20), [2, 6, 10, 14])
    profile = second_stage.daily_profile((timestamps[~gappy], values[~gappy]), now, parameters)
    assert profile is not None and profile.tolist() == [4, 2, 4, 4]
    assert second_stage.daily_profile((timestamps[8:], values[8:]), now, parameters) is None  # 2 earlier days


def test_deseasonalise_adds_the_recent_points_the_copy_lacks_and_removes_the_profile() -> None:
    timestamps, values = daily(8)
    history = second_stage.downsample(timestamps, values, PARAMETERS.resolution)
    now = float(timestamps[-1])
    series = second_stage.deseasonalise(history, (timestamps, values), now, PARAMETERS)
    assert series is not None
    out_t, out_v = series
    fresh = timestamps >= history[0][-1] + PARAMETERS.resolution
    # the two five-minute points after the copy's last bucket: one bucket, stamped with the newer point
    assert fresh.sum() == 2
    assert out_t.tolist() == [*history[0].tolist(), timestamps[-1]]
    profile = second_stage.daily_profile(history, now, PARAMETERS)
    assert profile is not None
    phase = int((timestamps[-1] % 86400) // PARAMETERS.resolution)
    assert out_v[-1] == values[fresh].mean() - profile[phase]
    # the noon peak is gone: what is left is about the noise of a 600 s average
    assert np.abs(out_v).max() < 0.2 * np.abs(values - values.mean()).max()


def test_the_daily_peak_is_normal_once_the_profile_is_removed() -> None:
    timestamps, values = daily(8)
    noon = int(np.flatnonzero(timestamps == 7 * 86400 + 43200)[0]) + 1
    decision = reanalysed(timestamps[:noon], values[:noon])
    assert decision is not None and not decision.anomalous
    assert decision.check == "deseasonalised_ensemble" and decision.threshold == SETTINGS.CONSENSUS
    assert decision.statistic < SETTINGS.CONSENSUS
    assert decision.reason.startswith("normal with the daily profile removed")


def test_a_value_ordinary_for_the_day_but_not_for_the_hour_is_anomalous_once_the_profile_is_removed() -> None:
    timestamps, values = daily(8)
    values = values.copy()
    # at 3 a.m., a rise to 35: well inside the day's range (the noon peak reaches 60)
    night = int(np.flatnonzero(timestamps == 7 * 86400 + 3 * 3600)[0]) + 1
    values[night - 6 : night] = 35.0
    decision = reanalysed(timestamps[:night], values[:night])
    assert decision is not None and decision.anomalous
    assert decision.statistic >= SETTINGS.CONSENSUS
    record = decision.as_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["reason"].startswith(f"anomalous with the daily profile removed: {int(decision.statistic)} of 9")


def test_the_reanalysis_cannot_judge_a_series_the_filters_reject_or_too_short_a_history() -> None:
    timestamps = np.arange(0, 8 * 86400, STEP, dtype=np.float64)
    flat = np.full(timestamps.shape[0], 5.0)
    assert reanalysed(timestamps, flat) is None  # the residual is all zeros: boring
    timestamps, values = daily(2)
    assert reanalysed(timestamps, values) is None


def test_too_little_history_is_not_judged() -> None:
    timestamps, values = daily(2)
    assert judged(timestamps, values) is None


def test_neighbours_that_barely_vary_need_a_real_difference() -> None:
    timestamps = np.arange(0, 5 * 86400, STEP, dtype=np.float64)
    values = np.full(timestamps.shape[0], 100.0)
    values[-3:] = 100.5
    decision = judged(timestamps, values)
    assert decision is not None and not decision.anomalous
    values[-3:] = 110.0
    decision = judged(timestamps, values)
    assert decision is not None and decision.anomalous and decision.statistic == 10.0 / 1.0


def test_all_zero_neighbours_give_an_unbounded_score_reported_as_null() -> None:
    timestamps = np.arange(0, 5 * 86400, STEP, dtype=np.float64)
    values = np.zeros(timestamps.shape[0])
    values[-3:] = 1.0
    decision = judged(timestamps, values)
    assert decision is not None and decision.anomalous and decision.as_dict()["statistic"] is None


def test_the_nearly_flagged_are_found_in_the_first_stage_verdicts_as_they_are() -> None:
    now = 1_700_000_000
    metrics = synthetic.make_metrics(60, now, anomalous=10, points=300)
    names = sorted(metrics)
    series = [Series.from_pairs(metrics[n]) for n in names]
    off = Settings({})
    on = off.replace(SECOND_STAGE_ENABLED=True)
    assert on.SECOND_STAGE_MIN_VOTES == 1
    verdicts = [o.verdict for o in engine.analyse(series, names, off, now) if o.verdict is not None]

    def nearly_flagged(verdict, settings) -> bool:
        return verdict.ensemble.count(False) in recheck.near_miss_falses(settings)

    near = [v for v in verdicts if nearly_flagged(v, on)]
    assert near and any(v.anomalous for v in verdicts)
    assert not any(nearly_flagged(v, off) for v in verdicts)
    for verdict in verdicts:
        votes = len(verdict.ensemble) - verdict.ensemble.count(False)
        assert nearly_flagged(verdict, on) == (not verdict.anomalous and votes >= 1)
        assert nearly_flagged(verdict, on.replace(SECOND_STAGE_MIN_VOTES=2)) == (not verdict.anomalous and votes >= 2)
        assert not nearly_flagged(verdict, on.replace(SECOND_STAGE_MIN_VOTES=on.CONSENSUS))


def judge_batch(batch: list[second_stage.Candidate]) -> list[second_stage.Decision | None]:
    """``judge`` of a batch at its candidates' time; checked equal to each candidate judged alone (the
    re-analyses of a batch share one engine call)."""
    now = float(batch[0].recent[0][-1])
    decisions = second_stage.judge(batch, PARAMETERS, SETTINGS, now)
    assert [second_stage.judge([c], PARAMETERS, SETTINGS, now)[0] for c in batch] == decisions
    return decisions


def test_judge_rechecks_a_flag_and_asks_both_checks_about_a_near_miss() -> None:
    timestamps, values = daily(8)
    noon = int(np.flatnonzero(timestamps == 7 * 86400 + 43200)[0]) + 1
    dawn = values.copy()
    night = int(np.flatnonzero(timestamps == 7 * 86400 + 3 * 3600)[0]) + 1
    dawn[night - 6 : night] = 35.0
    at_noon = judge_batch([candidate(timestamps[:noon], values[:noon], flagged=True),
                           candidate(timestamps[:noon], values[:noon], flagged=False)])
    # a flag: seasonal_nearest alone; the daily peak is normal for the time of day
    assert at_noon[0] is not None and at_noon[0].check == "seasonal_nearest" and not at_noon[0].anomalous
    # a near miss normal for the time of day: seasonal_nearest's decision, no re-analysis
    assert at_noon[1] == at_noon[0]
    at_night = judge_batch([candidate(timestamps[:night], dawn[:night], flagged=False),
                            candidate(timestamps[:night], dawn[:night], flagged=True),
                            candidate(timestamps[:night], values[:night], flagged=False),
                            candidate(timestamps[night - 600 : night], dawn[night - 600 : night], flagged=False)])
    # a near miss unusual for the hour: re-analysed, and the reason gives both statistics
    assert at_night[0] is not None and at_night[0].anomalous and at_night[0].check == "deseasonalised_ensemble"
    assert at_night[0].reason.startswith("unusual for the time of day (")
    assert "anomalous with the daily profile removed" in at_night[0].reason
    assert at_night[1] is not None and at_night[1].anomalous and at_night[1].check == "seasonal_nearest"
    assert at_night[2] is not None and not at_night[2].anomalous and at_night[2].check == "seasonal_nearest"
    assert at_night[3] is None  # two days of history: neither check can judge


def test_the_stage_settings_are_checked_only_when_it_is_on() -> None:
    lowered = Settings({"CONSENSUS": 4, "SECOND_STAGE_MIN_VOTES": 5, "SECOND_STAGE_DURATION": 86400})
    assert schema.check(lowered) == []
    problems = dict(schema.check(lowered.replace(SECOND_STAGE_ENABLED=True)))
    assert set(problems) == {"SECOND_STAGE_MIN_VOTES", "SECOND_STAGE_DURATION"}
    assert "more than CONSENSUS = 4" in problems["SECOND_STAGE_MIN_VOTES"]


def test_an_empty_copy_is_not_judged_by_either_check() -> None:
    empty = (np.empty(0), np.empty(0))
    timestamps, values = daily(2)
    recent = (timestamps, values)
    assert second_stage.recheck(empty, recent, PARAMETERS) is None
    assert second_stage.reanalyse([(empty, recent)], PARAMETERS, SETTINGS, float(timestamps[-1]), ["s"]) == [None]


def test_a_candidate_that_breaks_the_batch_is_left_unjudged_and_the_others_judged(monkeypatch, caplog) -> None:
    timestamps, values = daily(8)
    good = candidate(timestamps, values, flagged=True)
    bad = second_stage.Candidate("metrics.bad\x1b[31m", good.history, good.recent, True)
    judge = second_stage.judge

    def breaks_on_bad(candidates, *args):
        if any(c.name.startswith("metrics.bad") for c in candidates):
            raise ValueError("a copy no check can read")
        return judge(candidates, *args)

    monkeypatch.setattr(second_stage, "judge", breaks_on_bad)
    with caplog.at_level("ERROR"):
        decisions = recheck._judge([good, bad, good], PARAMETERS, SETTINGS, float(timestamps[-1]))
    alone = judge([good], PARAMETERS, SETTINGS, float(timestamps[-1]))[0]
    assert alone is not None and decisions == [alone, None, alone]
    assert "metrics.bad\\x1b[31m not judged" in caplog.text and "\x1b" not in caplog.text


def naive_statistic(history: tuple[np.ndarray, np.ndarray], recent: tuple[np.ndarray, np.ndarray]) -> float | None:
    """seasonal_nearest's statistic as docs/second-stage.md states it, one day at a time with np.median."""
    now = float(recent[0][-1])
    ago = now - history[0]
    day = np.rint(ago / 86400)
    near = (ago > 86400 - 3600) & (ago <= 7 * 86400 + 3600) & (np.abs(ago - day * 86400) <= 3600)
    days = sorted(set(day[near].tolist()))
    if len(days) < 3:
        return None
    tail = recent[1][-3:].mean()
    neighbours = history[1][near]
    distance = np.median([np.abs(history[1][near & (day == d)] - tail).min() for d in days])
    median = np.median(neighbours)
    spread = max(1.4826 * np.median(np.abs(neighbours - median)), 0.01 * abs(median))
    return float(distance / spread) if spread > 0 else (np.inf if distance > 0 else 0.0)


def test_a_batch_of_varied_candidates_is_judged_as_each_alone_and_as_the_formula_says() -> None:
    rng = np.random.default_rng(7)
    grid = np.arange(0, 8 * 86400, 600, dtype=np.float64)
    batch = []
    for n in range(60):
        times = grid.copy()
        if n % 7 == 1:
            times = np.delete(times, rng.integers(0, times.shape[0], 5))  # buckets missing
        if n % 11 == 2:
            times = rng.permutation(times)  # a copy out of order
        values = rng.normal(100, 10, times.shape[0]) + 50 * np.sin(2 * np.pi * times / 86400)
        if n % 13 == 3:
            values = np.round(values / 50) * 50  # coarse: often no spread
        end = 8 * 86400 - (0 if n % 3 else 60 * (n % 5))  # two or more different times
        recent_times = np.arange(end - 86400, end + 1, 60.0)[-(1 + n % 4) if n % 9 == 4 else 0 :]
        recent_values = 100 + 50 * np.sin(2 * np.pi * recent_times / 86400) + rng.normal(0, 10 * (n % 4),
                                                                                           recent_times.shape[0])
        keep = times < recent_times[-1] - 600
        batch.append(second_stage.Candidate(f"m{n}", (times[keep], values[keep]), (recent_times, recent_values),
                                            bool(n % 2)))
    decisions = second_stage.judge(batch, PARAMETERS, SETTINGS, 8 * 86400)
    alone = [second_stage.judge([c], PARAMETERS, SETTINGS, 8 * 86400)[0] for c in batch]
    assert decisions == alone
    nearest = [second_stage.recheck(c.history, c.recent, PARAMETERS) for c in batch]
    judged = 0
    for candidate, decision in zip(batch, nearest, strict=True):
        expected = naive_statistic(candidate.history, candidate.recent)
        if expected is None:
            assert decision is None
            continue
        judged += 1
        assert decision is not None and decision.statistic == expected
    assert judged > 50 and any(d is not None and d.anomalous for d in decisions)
    assert any(d is not None and not d.anomalous for d in decisions)
