"""``skyline-analyzer tune``: the optimiser, the daemon's records in a real Redis, the command's report."""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from skyline_analyzer import codec, config, keys
from skyline_analyzer.analyzer import tune_record
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.defaults import ALGORITHM_NAMES
from skyline_analyzer.detection import engine, ordering
from skyline_analyzer.detection.series import Series
from tests.support import NO_ALERTS, run_cli, vector_expected, vector_input

CORPUS_NOW = 1700000000


def masks_of(vectors: list[list[bool]]) -> np.ndarray:
    """False masks of vote vectors (True = the algorithm voted False)."""
    return np.array([sum(1 << i for i, false in enumerate(v) if false) for v in vectors], dtype=np.int64)


@pytest.mark.parametrize("seed", range(8))
def test_best_order_is_the_cheapest_of_every_permutation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = 6
    costs = list(rng.uniform(1, 100, count))
    # Correlated votes: a shared "calm" factor makes every algorithm likelier to vote False together.
    calm = rng.random((400, 1)) < 0.7
    votes = (rng.random((400, count)) < rng.uniform(0.2, 0.95, count)) | (calm & (rng.random((400, count)) < 0.5))
    weights = rng.uniform(0.5, 2, 400)
    max_false = int(rng.integers(1, count + 1))
    alive = ordering.alive_table(masks_of(votes.tolist()), weights, count, max_false)
    order, cost = ordering.best_order(costs, alive)
    every = {p: ordering.expected_cost(p, costs, alive) for p in itertools.permutations(range(count))}
    assert sorted(order) == list(range(count))
    assert math.isclose(cost, min(every.values()), rel_tol=1e-12)
    assert math.isclose(ordering.expected_cost(order, costs, alive), cost, rel_tol=1e-12)


def test_expected_cost_replays_the_early_exit_series_by_series() -> None:
    rng = np.random.default_rng(1)
    votes = (rng.random((50, 5)) < 0.6).tolist()
    costs = [3.0, 1.0, 4.0, 1.5, 9.0]
    order, max_false = [2, 0, 4, 1, 3], 2
    replayed = 0.0
    for vector in votes:
        falses = 0
        for algorithm in order:
            replayed += costs[algorithm]
            falses += vector[algorithm]
            if falses >= max_false:
                break
    alive = ordering.alive_table(masks_of(votes), np.ones(len(votes)), 5, max_false)
    assert math.isclose(ordering.expected_cost(order, costs, alive), replayed / len(votes), rel_tol=1e-12)


def test_with_independent_votes_and_any_false_stopping_the_best_order_is_by_cost_per_chance_of_false() -> None:
    # CONSENSUS = N: the first False ends the run. With independent votes, swapping two neighbours i, j
    # changes the cost by c_j p_i - c_i p_j (times the chance of reaching them), so the optimum sorts by
    # c / p, p the chance of a False: the classic sequential-testing rule.
    costs = [40.0, 5.0, 12.0, 30.0]
    p_false = [0.9, 0.1, 0.5, 0.6]
    vectors, weights = [], []
    for falses in itertools.product([False, True], repeat=4):
        vectors.append(list(falses))
        weights.append(math.prod(p if f else 1 - p for p, f in zip(p_false, falses, strict=True)))
    alive = ordering.alive_table(masks_of(vectors), np.array(weights), 4, max_false=1)
    order, cost = ordering.best_order(costs, alive)
    by_rule = sorted(range(4), key=lambda a: costs[a] / p_false[a])
    assert order == by_rule
    survive, closed_form = 1.0, 0.0
    for algorithm in by_rule:
        closed_form += costs[algorithm] * survive
        survive *= 1 - p_false[algorithm]
    assert math.isclose(cost, closed_form, rel_tol=1e-12)


def test_without_the_early_exit_every_order_costs_the_same_and_the_current_one_is_kept() -> None:
    alive = ordering.alive_table(masks_of([[True, False, True]]), np.ones(1), 3, None)
    order, cost = ordering.best_order([5.0, 1.0, 2.0], alive, preferred=[2, 0, 1])
    assert (order, cost) == ([2, 0, 1], 8.0)


def seed_corpus(conn, corpus: str, delta: int) -> int:
    """The corpus in Redis, every timestamp moved by ``delta``; the time to analyse it at."""
    series = vector_input(corpus)
    pipe = conn.pipeline(transaction=False)
    for name, pairs in series.items():
        pipe.set(keys.metric("metrics.", name), codec.encode([[t + delta, v] for t, v in pairs]))
        pipe.sadd(keys.unique_metrics("metrics."), keys.metric("metrics.", name))
    pipe.execute()
    return CORPUS_NOW + delta


@pytest.mark.parametrize("engine_name", ["fast", "reference"])
def test_the_daemon_records_what_tune_reports(
    engine_name: str, make_settings: Callable[..., Path], redis_conn, tmp_path: Path
) -> None:
    expected = vector_expected("corpus_60s")["series"]
    # A sample larger than the corpus holds every analysed series: the records can be checked exactly.
    path = make_settings(**NO_ALERTS, ANALYZER_PROCESSES=2, ANALYZER_ENGINE=engine_name, TUNE_SAMPLE_SIZE=1000,
                         TUNE_HISTORY_RUNS=2)
    settings = config.load(path)
    delta = int(time.time()) - CORPUS_NOW
    for run in range(3):
        # Each run a second later, the data too: the same verdicts, three distinct runs.
        now = seed_corpus(redis_conn, "corpus_60s", delta + run)
        Analyzer(settings).run_once(now=now)
    # Two workers a run, two runs kept.
    stored = [json.loads(raw) for raw in redis_conn.lrange(keys.ANALYZER_TUNE, 0, -1)]
    assert len(stored) == 4
    assert [r["run"] for r in stored] == [now, now, now - 1, now - 1]

    analysed = {n: r for n, r in expected.items() if not r["exception"]}
    # The sample holds each analysed series' complete vote vector, as the golden vectors have it.
    codes = {True: "T", False: "F", None: "N"}
    newest = [r for r in stored if r["run"] == now]
    assert Counter(v for r in newest for v in r["sample"]) == Counter(
        "".join(codes[v] for v in r["ensemble_all"]) for r in analysed.values())
    assert sum(r["analysed"] for r in newest) == len(analysed)
    # What ran and what it voted, from the early-exit ensembles.
    for column, name in enumerate(ALGORITHM_NAMES):
        assert sum(r["runs"][column] for r in newest) == sum(1 for r in analysed.values() if ran(r, column))
        assert sum(r["true"][column] for r in newest) == sum(1 for r in analysed.values()
                                                             if r["ensemble_optimized"][column] is True)
        assert sum(r["timed_runs"][column] for r in newest) == sum(r["runs"][column] for r in newest), name

    done = run_cli(path, "tune", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["runs"], report["records"], report["sampled"]) == (2, 4, 2 * len(analysed))
    assert report["analysed_per_run"] == len(analysed)
    for row, name in zip(report["algorithms"], ALGORITHM_NAMES, strict=True):
        assert row["name"] == name
        assert math.isclose(row["sample_true"], sum(r["ensemble_all"][ALGORITHM_NAMES.index(name)] is True
                                                    for r in analysed.values()) / len(analysed))
        assert row["cost"] > 0
    assert sorted(report["best"]["order"]) == sorted(ALGORITHM_NAMES)
    assert report["best"]["cost"] <= report["current"]["cost"]
    assert math.isclose(report["saving"]["per_series"], report["current"]["cost"] - report["best"]["cost"])

    text = run_cli(path, "tune", "--runs", "1", timeout=120)
    assert text.returncode == 0, text.stderr
    assert "runs        1 (" in text.stdout
    assert "ALGORITHMS = [" in text.stdout or "already the cheapest" in text.stdout


def ran(result: dict, column: int) -> bool:
    """Whether the early exit let algorithm ``column`` run (CONSENSUS 6 of 9: the fourth False stops)."""
    return result["ensemble_optimized"][:column].count(False) < 4 if column else True


def test_tune_skips_hostile_records_and_counts_them(make_settings: Callable[..., Path], redis_conn) -> None:
    good = {"version": 1, "run": 1.7e9, "engine": "fast", "algorithms": list(ALGORITHM_NAMES), "consensus": 6,
            "early_exit": True, "analysed": 3, "runs": [3] * 9, "true": [1] * 9, "none": [0] * 9,
            "timed_runs": [3] * 9, "seconds": [1e-5] * 9, "sample": ["FFFFFFFFF", "TTTTTTTTT"],
            "record_seconds": 0.001}
    bad = [
        b"not json", b"\xff\xfe", b"[" * 60000, b"x" * (1 << 17), b"[]", b'{"version": 2}',
        json.dumps({**good, "algorithms": ["grubbs", "grubbs"]}).encode(),
        json.dumps({**good, "runs": [True] * 9}).encode(),
        json.dumps({**good, "seconds": [float("nan")] + [0.0] * 8}).encode(),
        json.dumps({**good, "true": [4] * 9}).encode(),
        json.dumps({**good, "sample": ["FFFF"]}).encode(),
        json.dumps({**good, "sample": ["XXXXXXXXX"]}).encode(),
        json.dumps({**good, "consensus": 0}).encode(),
        json.dumps({**good, "analysed": -1}).encode(),
        json.dumps({**good, "run": "\n\x1b[2Jforged"}).encode(),
    ]
    other = json.dumps({**good, "algorithms": list(ALGORITHM_NAMES[:8]), "sample": [],
                        **{column: good[column][:8] for column in ("runs", "true", "none", "timed_runs", "seconds")}
                        }).encode()
    redis_conn.rpush(keys.ANALYZER_TUNE, json.dumps(good).encode(), *bad, other)
    path = make_settings(TUNE_HISTORY_RUNS=100)
    done = run_cli(path, "tune", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["records"] == 1 and report["sampled"] == 2
    assert sum(report["skipped"].values()) == len(bad)
    assert report["other_algorithms"] == 1
    assert "\x1b" not in done.stderr

    redis_conn.delete(keys.ANALYZER_TUNE)
    redis_conn.set(keys.ANALYZER_TUNE, b"a string, not a list")
    wrong_type = run_cli(path, "tune", timeout=120)
    assert wrong_type.returncode == 1 and "could not read analyzer.tune" in wrong_type.stderr

    redis_conn.delete(keys.ANALYZER_TUNE)
    empty = run_cli(path, "tune", timeout=120)
    assert empty.returncode == 2 and "no usable record" in empty.stderr


def test_a_failing_record_never_reaches_the_worker(load_settings: Callable[..., config.Settings], redis_conn,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(TUNE_SAMPLE_SIZE=5)
    data = vector_input("corpus_60s")
    names = sorted(data)[:40]
    series = [Series.from_pairs(data[n], n) for n in names]
    recorder = tune_record.recorder(settings, CORPUS_NOW)
    tune_record.observe(recorder, series, engine.analyse(series, names, settings, CORPUS_NOW, recorder=recorder))
    assert recorder.analysed > 0

    def broken(*args: object, **kwargs: object) -> list:
        raise RuntimeError("a detector broke while completing the sample")

    monkeypatch.setattr(engine, "analyse", broken)
    tune_record.store(recorder, redis_conn)
    assert redis_conn.llen(keys.ANALYZER_TUNE) == 0
    assert "could not build the run's tune record" in caplog.text
    monkeypatch.undo()

    # Redis gone: the record is lost, logged, and nothing is raised.
    gone = redis_conn.__class__(unix_socket_path="/nonexistent/redis.sock")
    tune_record.store(recorder, gone)
    assert "could not store the run's tune record" in caplog.text


def test_the_sample_keeps_copies_not_the_decoded_chunk(load_settings: Callable[..., config.Settings]) -> None:
    """A decoded series is a row of its chunk's 2-D arrays; the sample, kept to the end of the run, holds
    copies, so it keeps TUNE_SAMPLE_SIZE series alive and not their chunks."""
    settings = load_settings(TUNE_SAMPLE_SIZE=5)
    data = vector_input("corpus_60s")
    names = sorted(data)[:40]
    series = codec.decode_many([codec.encode(data[n]) for n in names], names)
    assert any(one.row is not None for one in series)
    recorder = tune_record.recorder(settings, CORPUS_NOW)
    tune_record.observe(recorder, series, engine.analyse(series, names, settings, CORPUS_NOW))
    sample = recorder._sample
    assert len(sample) == 5
    for _, kept, name, _ in sample:
        original = series[names.index(name)]
        assert np.array_equal(kept.values, original.values) and kept.last_value == original.last_value
        assert not any(np.shares_memory(kept.values, one.values) or np.shares_memory(kept.timestamps, one.timestamps)
                       for one in series)
