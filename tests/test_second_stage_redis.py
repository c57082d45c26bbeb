"""The second stage against a real redis-server: Horizon's longer copies, the worker's re-check, the outputs."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skyline_analyzer import codec, keys
from skyline_analyzer.analyzer import run_metrics
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import anomaly_dump_path
from skyline_analyzer.harness import seed_redis
from skyline_analyzer.horizon import long_history
from tests.support import NO_ALERTS

STEP = 300
DAY = 86400
#: Minutes into the day of the daily peak, and its length.
PEAK_AT, PEAK_MINUTES = 12 * 60, 30


def week(end: int, peak_today_at: int = PEAK_AT, seed: int = 3) -> list[tuple[int, float]]:
    """Eight days of five-minute points ending at ``end``: noise around 10 and a peak of 60 at noon each day
    (today's at ``peak_today_at`` minutes); ``end`` falls three points into today's peak."""
    rng = np.random.default_rng(seed)
    start_of_today = end - (peak_today_at * 60 + 2 * STEP)
    pairs = []
    for t in range(end - 8 * DAY, end + 1, STEP):
        minute = (t - start_of_today) % DAY // 60
        today = t >= start_of_today
        at = peak_today_at if today else PEAK_AT
        peak = at <= minute < at + PEAK_MINUTES
        pairs.append((t, float(60 + rng.normal(0, 1) if peak else 10 + rng.normal(0, 1))))
    return pairs


@pytest.fixture
def stage_settings(load_settings, tmp_path):
    def build(**overrides):
        return load_settings(**{**NO_ALERTS, "ANALYZER_PROCESSES": 1, "ANOMALY_DUMP": str(tmp_path / "anomalies.json"),
                                "SECOND_STAGE_ENABLED": True, **overrides})
    return build


def seed_with_copies(conn, settings, metrics: dict[str, list[tuple[int, float]]], now: int) -> None:
    """Horizon's state: the copies built by the keeper from the whole week, then each series cut to a day."""
    seed_redis(conn, metrics, settings.FULL_NAMESPACE)
    long_history.keep_pass(conn, settings, now)
    seed_redis(conn, {n: [p for p in s if p[0] > now - settings.FULL_DURATION] for n, s in metrics.items()},
               settings.FULL_NAMESPACE)


def test_the_keeper_appends_complete_buckets_trims_and_expires(redis_conn, stage_settings):
    settings = stage_settings(SECOND_STAGE_DURATION=3 * DAY)
    now = 1_700_000_000 - 1_700_000_000 % 600 + 290
    series = [(t, float(t % 7)) for t in range(now - 4 * DAY, now + 1, 10)]
    seed_redis(redis_conn, {"a": series}, "metrics.")
    first = long_history.keep_pass(redis_conn, settings, now)
    copy = codec.decode(redis_conn.get(keys.second_stage_history("metrics.a")))
    assert first.rewritten == 1 and first.series == 1
    assert copy.timestamps[0] >= now - 3 * DAY and copy.timestamps[-1] == now - 290 - 600
    assert np.all(np.diff(copy.timestamps) == 600)
    assert redis_conn.ttl(keys.second_stage_history("metrics.a")) in range(3 * DAY - 10, 3 * DAY + 1)
    later = now + 600
    seed_redis(redis_conn, {"a": series + [(t, 1.0) for t in range(now + 10, later + 1, 10)]}, "metrics.")
    second = long_history.keep_pass(redis_conn, settings, later)
    grown = codec.decode(redis_conn.get(keys.second_stage_history("metrics.a")))
    assert (second.extended, second.rewritten, second.buckets) == (0, 1, 1)  # the oldest bucket left the window
    assert grown.timestamps[-1] == copy.timestamps[-1] + 600 and grown.timestamps[0] > copy.timestamps[0]
    assert long_history.keep_pass(redis_conn, settings, later).buckets == 0


def test_a_copy_that_does_not_decode_is_rebuilt(redis_conn, stage_settings, caplog):
    settings = stage_settings()
    now = 1_700_000_000
    seed_redis(redis_conn, {"a": [(t, 1.0) for t in range(now - DAY, now + 1, 60)]}, "metrics.")
    redis_conn.set(keys.second_stage_history("metrics.a"), b"\xc1\x1b[31m")
    with caplog.at_level(logging.INFO):
        result = long_history.keep_pass(redis_conn, settings, now)
    assert result.undecodable == 1 and result.rewritten == 1
    assert "\x1b" not in caplog.text
    assert len(codec.decode(redis_conn.get(keys.second_stage_history("metrics.a")))) == DAY // 600


def test_a_seasonal_peak_is_not_reported_and_an_unusual_one_is_with_its_reason(redis_conn, stage_settings):
    now = int(time.time()) // STEP * STEP
    metrics = {"noon": week(now), "night": week(now, peak_today_at=3 * 60)}
    settings = stage_settings()
    seed_with_copies(redis_conn, settings, metrics, now)
    off = Analyzer(stage_settings(SECOND_STAGE_ENABLED=False)).run_once()
    assert sorted(a.base_name for a in off.anomalies) == ["night", "noon"]
    assert all(a.second_stage is None for a in off.anomalies)
    report = Analyzer(settings).run_once()
    assert [a.base_name for a in report.anomalies] == ["night"]
    decision = report.anomalies[0].second_stage
    assert decision is not None and decision["anomalous"] and decision["check"] == "seasonal_nearest"
    assert decision["statistic"] > decision["threshold"] == settings.SECOND_STAGE_THRESHOLD
    dump = json.loads(anomaly_dump_path(settings).read_text())
    assert dump == [[metrics["night"][-1][1], "night", now, decision]]
    assert sum(report.anomaly_breakdown.values()) == len(report.anomalies[0].triggered)


def test_a_nearly_flagged_metric_unusual_for_the_hour_is_reported_by_the_reanalysis(redis_conn, stage_settings):
    now = int(time.time()) // STEP * STEP
    start_of_today = now - (3 * 60 * 60 + 2 * STEP)
    # today's peak comes at 3 a.m. and reaches 20, not 60: a third of the day's range, so the first stage
    # gives it a few votes only; against the same hour on earlier days (about 10) it is far out
    dawn = [(t, v - 40 if t >= start_of_today and v > 40 else v) for t, v in week(now, peak_today_at=3 * 60)]
    metrics = {"dawn": dawn, "noon": week(now)}
    settings = stage_settings()
    seed_with_copies(redis_conn, settings, metrics, now)
    off = Analyzer(stage_settings(SECOND_STAGE_ENABLED=False)).run_once()
    assert [a.base_name for a in off.anomalies] == ["noon"]
    report = Analyzer(settings).run_once()
    assert [a.base_name for a in report.anomalies] == ["dawn"]
    anomaly = report.anomalies[0]
    assert settings.SECOND_STAGE_MIN_VOTES <= len(anomaly.triggered) < settings.CONSENSUS
    decision = anomaly.second_stage
    assert decision is not None and decision["anomalous"] and decision["check"] == "deseasonalised_ensemble"
    assert decision["statistic"] >= decision["threshold"] == settings.CONSENSUS
    assert decision["reason"].startswith("unusual for the time of day (")
    assert "anomalous with the daily profile removed" in decision["reason"]
    dump = json.loads(anomaly_dump_path(settings).read_text())
    assert dump == [[dawn[-1][1], "dawn", now, decision]]


def test_the_first_stage_runs_the_same_algorithms_with_the_stage_on(redis_conn, stage_settings):
    """The stage costs only its own work on the candidates: every algorithm of the first stage runs as many
    times as with the stage off (the re-analyses are not the first stage's runs and are not recorded)."""
    now = int(time.time()) // STEP * STEP
    metrics = {f"m{n}": week(now, peak_today_at=at, seed=n) for n, at in enumerate([3 * 60, 12 * 60, 18 * 60] * 4)}
    rng = np.random.default_rng(5)
    # calm metrics, where the early exit stops most ensembles after a few algorithms
    metrics.update({f"calm{n}": [(t, float(10 + rng.normal(0, 1))) for t in range(now - 8 * DAY, now + 1, STEP)]
                    for n in range(12)})
    off = stage_settings(SECOND_STAGE_ENABLED=False)
    seed_with_copies(redis_conn, off, metrics, now)
    runs = {}
    for settings in (off, stage_settings()):
        report = Analyzer(settings).run_once()
        timings = run_metrics.collect_run_metrics(Path(settings.SKYLINE_TMP_DIR), list(settings.ALGORITHMS))
        runs[settings.SECOND_STAGE_ENABLED] = ({name: t.times_run for name, t in timings.items()},
                                               sorted(a.base_name for a in report.anomalies))
    assert runs[True][0] == runs[False][0] and sum(runs[False][0].values()) > 0
    # and the stage did change the outcome (the noon peaks are seasonal, the others not)
    assert runs[True][1] != runs[False][1]


def test_without_a_copy_the_first_stage_verdict_stands(redis_conn, stage_settings):
    now = int(time.time()) // STEP * STEP
    metrics = {"noon": week(now)}
    seed_redis(redis_conn, {n: [p for p in s if p[0] > now - DAY] for n, s in metrics.items()}, "metrics.")
    report = Analyzer(stage_settings()).run_once()
    assert [(a.base_name, a.second_stage) for a in report.anomalies] == [("noon", None)]


def test_the_keeper_thread_makes_a_pass_and_stops(redis_conn, stage_settings):
    settings = stage_settings()
    now = int(time.time())
    seed_redis(redis_conn, {"a": [(t, 1.0) for t in range(now - DAY, now + 1, 60)]}, "metrics.")
    stop = threading.Event()
    thread = threading.Thread(target=long_history.run_keeper, args=(settings, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not redis_conn.exists(keys.second_stage_history("metrics.a")) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(codec.decode(redis_conn.get(keys.second_stage_history("metrics.a")))) >= DAY // 600 - 1
