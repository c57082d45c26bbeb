"""run_selected_algorithm: filters, consensus, early exit, None votes, second order and run metrics."""

from __future__ import annotations

import multiprocessing
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyline_analyzer import config, keys
from skyline_analyzer.analyzer import history, run_metrics
from skyline_analyzer.analyzer.run_metrics import (
    FLUSH_EVERY,
    RunMetricsRecorder,
    collect_run_metrics,
    error_path,
    reset_run_metrics,
    take_algorithm_errors,
)
from skyline_analyzer.detection.reference import algorithm_self_test, run_selected_algorithm
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import Boring, Stale, TooShort

NOW = 1_700_000_000.0
DEFAULTS = config.Settings({})


def minutes(values: list[float] | np.ndarray, end: float = NOW) -> Series:
    v = np.asarray(values, dtype=np.float64)
    t = end - 60.0 * np.arange(v.shape[0] - 1, -1, -1)
    return Series(t, v, float(t[-1]), float(v[-1]))


class TestFilters:
    def test_empty_series_is_too_short(self) -> None:
        with pytest.raises(TooShort):
            run_selected_algorithm(Series.empty(), "metrics.x", DEFAULTS, now=NOW)

    def test_too_short_comes_before_stale(self) -> None:
        with pytest.raises(TooShort):
            run_selected_algorithm(minutes([1, 2, 3], end=NOW - 10_000), "metrics.x",
                                   DEFAULTS.replace(MIN_TOLERABLE_LENGTH=5), now=NOW)

    def test_stale_comes_before_boring(self) -> None:
        with pytest.raises(Stale):
            run_selected_algorithm(minutes([7] * 50, end=NOW - 501), "metrics.x", DEFAULTS, now=NOW)

    def test_stale_is_strictly_older_than_the_period(self) -> None:
        with pytest.raises(Boring):
            run_selected_algorithm(minutes([7] * 50, end=NOW - 500), "metrics.x", DEFAULTS, now=NOW)

    def test_boring_looks_only_at_the_last_points(self) -> None:
        with pytest.raises(Boring):
            run_selected_algorithm(minutes(list(range(50)) + [7] * 100), "metrics.x", DEFAULTS, now=NOW)
        verdict = run_selected_algorithm(minutes(list(range(50)) + [7] * 99), "metrics.x", DEFAULTS, now=NOW)
        assert verdict.anomalous is False

    def test_boring_is_an_equality_test(self) -> None:
        two_sizes = DEFAULTS.replace(BOREDOM_SET_SIZE=2)
        # A constant series is not Boring when BOREDOM_SET_SIZE is 2 (docs/departures.md#a9).
        run_selected_algorithm(minutes([7] * 200), "metrics.x", two_sizes, now=NOW)
        with pytest.raises(Boring):
            run_selected_algorithm(minutes([7, 8] * 100), "metrics.x", two_sizes, now=NOW)

    def test_one_point_is_boring_with_defaults(self) -> None:
        with pytest.raises(Boring):
            run_selected_algorithm(minutes([5]), "metrics.x", DEFAULTS, now=NOW)


class TestConsensus:
    def test_an_erroring_algorithm_votes_anomalous(self, load_settings: Callable[..., config.Settings]) -> None:
        settings = load_settings(ALGORITHMS=["histogram_bins"], CONSENSUS=1)
        # numpy cannot bin a range that overflows: histogram_bins raises.
        series = minutes([-1.7e308, 1.7e308, 0.0, 1.0])
        recorder = RunMetricsRecorder(settings.SKYLINE_TMP_DIR)
        verdict = run_selected_algorithm(series, "metrics.overflow", settings, now=NOW, recorder=recorder)
        assert verdict.ensemble == [None]
        assert verdict.anomalous is True
        errors = take_algorithm_errors(Path(settings.SKYLINE_TMP_DIR), [os.getpid()], ["histogram_bins"])
        assert len(errors) == 1 and "ValueError" in errors[0][2]
        assert not error_path(Path(settings.SKYLINE_TMP_DIR), errors[0][0], "histogram_bins").exists()

    def test_datapoint_is_the_raw_last_value(self) -> None:
        t = NOW - 60.0 * np.arange(99, -1, -1)
        v = np.r_[np.tile([1.0, 2.0], 48), 1.0, 1.0, 500.0, 500.0]
        verdict = run_selected_algorithm(Series(t, v, int(t[-1]), 500), "metrics.x", DEFAULTS, now=NOW)
        assert verdict.anomalous is True
        assert verdict.datapoint == 500 and type(verdict.datapoint) is int

    def test_consensus_threshold(self) -> None:
        series = minutes(np.r_[100 + 10 * np.sin(np.arange(1440) / 10), 60.0])
        full = run_selected_algorithm(series, "metrics.x", DEFAULTS.replace(RUN_OPTIMIZED_WORKFLOW=False), now=NOW)
        votes = sum(1 for v in full.ensemble if v)
        assert votes == 3 and full.anomalous is False
        lowered = DEFAULTS.replace(RUN_OPTIMIZED_WORKFLOW=False, CONSENSUS=3)
        assert run_selected_algorithm(series, "metrics.x", lowered, now=NOW).anomalous is True


SHAPES = st.sampled_from(["noise", "sine", "walk", "steps", "ints"])


@st.composite
def series_strategy(draw: st.DrawFn) -> Series:
    n = draw(st.integers(2, 400))
    shape = draw(SHAPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    i = np.arange(n, dtype=np.float64)
    base = {
        "noise": lambda: rng.normal(100, 5, n),
        "sine": lambda: 100 + 10 * np.sin(i / draw(st.floats(1, 50))),
        "walk": lambda: np.cumsum(rng.normal(0, 1, n)),
        "steps": lambda: np.where(i > n * draw(st.floats(0.1, 0.95)), 20.0, 10.0),
        "ints": lambda: rng.integers(0, 4, n).astype(np.float64),
    }[shape]()
    tail = draw(st.sampled_from([None, 0.0, 1e3, -1e3, 3.0]))
    if tail is not None:
        base[-draw(st.integers(1, 3)):] += tail
    return minutes(base)


class TestEarlyExit:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(series=series_strategy(), consensus=st.integers(1, 9))
    def test_early_exit_never_changes_the_verdict(self, series: Series, consensus: int) -> None:
        optimized = DEFAULTS.replace(CONSENSUS=consensus)
        everything = optimized.replace(RUN_OPTIMIZED_WORKFLOW=False)
        try:
            full = run_selected_algorithm(series, "metrics.x", everything, now=NOW)
        except Boring:
            return
        fast = run_selected_algorithm(series, "metrics.x", optimized, now=NOW)
        assert fast.anomalous == full.anomalous
        # Every vote actually cast is the full run's; skipped ones are recorded as False.
        cast = next((k + 1 for k in range(9) if fast.ensemble[: k + 1].count(False) >= 9 - consensus + 1), 9)
        assert fast.ensemble[:cast] == full.ensemble[:cast]
        assert fast.ensemble[cast:] == [False] * (9 - cast)

    def test_all_algorithms_run_metrics_disables_the_exit(self) -> None:
        series = minutes(np.r_[100 + 10 * np.sin(np.arange(1440) / 10), 60.0])
        settings = DEFAULTS.replace(ENABLE_ALL_ALGORITHMS_RUN_METRICS=True)
        assert run_selected_algorithm(series, "metrics.x", settings, now=NOW).ensemble.count(True) == 3


class TestRunMetrics:
    def test_only_algorithms_actually_run_are_timed(self, load_settings: Callable[..., config.Settings]) -> None:
        settings = load_settings()
        tmp = Path(settings.SKYLINE_TMP_DIR)
        reset_run_metrics(tmp, list(settings.ALGORITHMS))
        recorder = RunMetricsRecorder(tmp)
        series = minutes(np.r_[100 + 10 * np.sin(np.arange(1440) / 10), 60.0])
        run_selected_algorithm(series, "metrics.a", settings, now=NOW, recorder=recorder)
        run_selected_algorithm(minutes(np.r_[np.ones(500), 9.0]), "metrics.b", settings, now=NOW, recorder=recorder)
        recorder.flush()
        timings = collect_run_metrics(tmp, list(settings.ALGORITHMS))
        # The sine stops after ks_test (5 run); the step series runs all nine.
        assert {name: t.times_run for name, t in timings.items()} == {
            **{name: 2 for name in settings.ALGORITHMS[:5]},
            **{name: 1 for name in settings.ALGORITHMS[5:]},
        }
        assert all(t.total_time >= t.median_time > 0 for t in timings.values())
        lines = (tmp / "analyzer.grubbs.count").read_text()
        assert lines == "1\n1\n"

    def test_disabled_run_metrics_write_nothing(self, load_settings: Callable[..., config.Settings]) -> None:
        settings = load_settings(ENABLE_ALGORITHM_RUN_METRICS=False)
        tmp = Path(settings.SKYLINE_TMP_DIR)
        recorder = RunMetricsRecorder(tmp)
        run_selected_algorithm(minutes(np.r_[np.ones(500), 9.0]), "metrics.b", settings, now=NOW, recorder=recorder)
        recorder.flush()
        assert list(tmp.glob("analyzer.*")) == []

    def test_a_flush_is_forced_by_the_records_held_not_by_the_runs_they_cover(self, tmp_path: Path) -> None:
        reset_run_metrics(tmp_path, ["grubbs"])
        recorder = RunMetricsRecorder(tmp_path)
        recorder.record("grubbs", 0.5, runs=5000)  # one block's share: one record of many runs
        assert (tmp_path / "analyzer.grubbs.count").read_text() == ""
        for _ in range(FLUSH_EVERY - 2):
            recorder.record("grubbs", 0.25)
        assert (tmp_path / "analyzer.grubbs.count").read_text() == ""
        recorder.record("grubbs", 0.25)  # the FLUSH_EVERY-th record
        timing = collect_run_metrics(tmp_path, ["grubbs"])["grubbs"]
        assert timing.times_run == 5000 + FLUSH_EVERY - 1
        assert timing.total_time == round(2500 + 0.25 * (FLUSH_EVERY - 1), 6)

    def test_concurrent_workers_lose_no_line(self, tmp_path: Path) -> None:
        algorithms = ["grubbs", "ks_test"]
        reset_run_metrics(tmp_path, algorithms)
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_append_timings, args=(tmp_path, 5000)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
        timings = collect_run_metrics(tmp_path, algorithms)
        assert timings["grubbs"].times_run == timings["ks_test"].times_run == 20000
        lines = (tmp_path / "analyzer.grubbs.timings").read_text().splitlines()
        assert all(line == "0.000123" for line in lines)


def _append_timings(tmp: Path, count: int) -> None:
    recorder = RunMetricsRecorder(tmp)
    for _ in range(count):
        recorder.record("grubbs", 0.000123)
        recorder.record("ks_test", 0.000123)
    recorder.flush()


class TestRedisSide:
    def test_stale_candidates_are_recorded(
        self, redis_conn: redis.Redis, load_settings: Callable[..., config.Settings]
    ) -> None:
        settings = load_settings()
        cases = ((299, "fresh"), (300, "lower"), (499, "upper"), (500, "stale-not"))
        history.record_stale_candidates(redis_conn, settings, [minutes([1, 2] * 20, end=NOW - age) for age, _ in cases],
                                        [f"metrics.{name}" for _, name in cases], NOW)
        members = {m.decode() for m in redis_conn.smembers(keys.ALERT_ON_STALE_METRICS)}
        assert members == {"metrics.lower", "metrics.upper"}

    def test_second_order(self, redis_conn: redis.Redis, load_settings: Callable[..., config.Settings]) -> None:
        settings = load_settings(ENABLE_SECOND_ORDER=True)
        values = np.r_[np.tile([1.0, 2.0], 300), 1.0, 1.0, 900.0, 900.0]
        key = keys.trigger_history("metrics.s")

        def verdict(now: float) -> bool:
            series = minutes(values, end=now)
            consensus = run_selected_algorithm(series, "metrics.s", settings, now=now)
            return history.second_order(redis_conn, consensus, "metrics.s", now).anomalous

        assert verdict(NOW) is True  # first trigger surfaces
        assert msgpack.unpackb(redis_conn.get(key)) == [[NOW, 900.0]]
        assert verdict(NOW + 100) is False  # same datapoint within 300 s: ignored, history unchanged
        assert len(msgpack.unpackb(redis_conn.get(key))) == 1
        results = [verdict(NOW + 600 * k) for k in range(1, 13)]  # regular intervals: not anomalous
        assert not any(results)
        assert verdict(NOW + 600 * 12 + 30_000) is True  # a very irregular interval surfaces again
        assert len(msgpack.unpackb(redis_conn.get(key))) == 14


class TestSelfTest:
    def test_default_algorithms_pass(self) -> None:
        algorithm_self_test(DEFAULTS, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 10, allow_nan=False).map(lambda t: f"{t:.6f}"), st.just("1"),
                          st.text(alphabet="0123456789.' \t\r\x0c-e\n", max_size=8)), max_size=30))
def test_run_metric_files_read_the_same_either_way(tmp_path_factory, lines):
    """The one-pass reading of plain files gives what the line-by-line reading gives (or the same error)."""
    path = tmp_path_factory.mktemp("metrics") / "analyzer.x.timings"
    path.write_text("\n".join(lines) + "\n")
    text = path.read_text()
    want = _runs_line_by_line(text)
    if want is None:
        with pytest.raises(ValueError):
            run_metrics._floats(text)
        return
    assert run_metrics._floats(text) == want


def _runs_line_by_line(text: str) -> list[float] | None:
    """A run-metric file's numbers read line by line, as v1.2.8 read them; None if a line is not a number."""
    try:
        return [float(line.replace("'", "")) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["0.000003", "0.000012", "0.000120", "1", "0.5"]),
                          st.floats(0, 10, allow_nan=False).map(lambda t: f"{t:.6f}"),
                          st.text(alphabet="0123456789.' \t\r-e\n", max_size=8)), max_size=40))
def test_timing_summary_is_the_runs_summary(lines: list[str]) -> None:
    """A timings file's summary: the count and the median of its runs as statistics.median gives them, the
    sum within rounding of the file-order sum; an unreadable file is rejected either way."""
    text = "\n".join(lines) + "\n"
    runs = _runs_line_by_line(text)
    if runs is None:
        with pytest.raises(ValueError):
            run_metrics._tally(text)
        return
    tally = run_metrics._tally(text)
    assert sum(tally.values()) == len(runs)
    if not runs:
        return
    timing = run_metrics.summarise(tally)
    assert timing.times_run == len(runs)
    assert timing.median_time == round(statistics.median(runs), 6)
    total = round(sum(runs), 6)
    assert timing.total_time == total or abs(timing.total_time - total) <= 1.5e-6


def test_count_files_are_checked_as_before() -> None:
    """A count file counts when it holds a number and nothing else: the "1" lines workers write, or others."""
    assert run_metrics._has_records("1\n" * 5)
    assert run_metrics._has_records("2\n1\n")
    assert not run_metrics._has_records("")
    assert not run_metrics._has_records("\n\n")
    with pytest.raises(ValueError):
        run_metrics._has_records("1\n" * 5 + "x\n")
    with pytest.raises(ValueError):
        run_metrics._has_records("1\n1.2.3\n")
