"""The fast engine against the reference path: same exception, verdict and ensemble for every series."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest

from skyline_analyzer import codec, config
from skyline_analyzer.analyzer import history
from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder, collect_run_metrics, reset_run_metrics
from skyline_analyzer.detection import batch, batched, engine
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SettingsError
from tests.support import CORPORA, run_cli, vector_expected, vector_input

NOW = 1_700_000_000


def both(series: list[Series], names: list[str], settings: config.Settings, **kw: object) -> tuple[list, list]:
    fast = engine.analyse(series, names, settings.replace(ANALYZER_ENGINE="fast"), NOW, **kw)
    reference = engine.analyse(series, names, settings.replace(ANALYZER_ENGINE="reference"), NOW, **kw)
    return fast, reference


@functools.cache
def corpus(name: str) -> tuple[list[str], list[Series], dict]:
    data = vector_input(name)
    expected = vector_expected(name)
    names = sorted(data)
    return names, [Series.from_pairs(data[n], n) for n in names], expected


@pytest.mark.parametrize("name", CORPORA)
@pytest.mark.parametrize(("optimized", "ensemble_key"), [(True, "ensemble_optimized"), (False, "ensemble_all")])
def test_fast_engine_reproduces_every_vector(
    name: str, optimized: bool, ensemble_key: str, load_settings: Callable[..., config.Settings]
) -> None:
    # The reference path reproduces these vectors (tests/test_vectors.py), so agreeing with the vectors is
    # agreeing with the reference, without paying for the reference here.
    names, series, expected = corpus(name)
    settings = load_settings(RUN_OPTIMIZED_WORKFLOW=optimized)
    for outcome in engine.analyse(series, names, settings, NOW):
        want = expected["series"][outcome.name]
        if want["exception"]:
            assert outcome.exception == want["exception"], outcome.name
            continue
        assert outcome.exception is None, outcome.name
        got = (outcome.verdict.anomalous, outcome.verdict.ensemble, outcome.verdict.datapoint)
        assert got == (want["anomalous"], want[ensemble_key], want["datapoint"]), outcome.name
        assert type(outcome.verdict.datapoint) is type(want["datapoint"]), outcome.name


def test_engine_setting_selects_the_path(
    load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    names, series, _ = corpus("corpus_60s")
    batches = []
    real = batch.evaluate
    monkeypatch.setattr(batch, "evaluate", lambda *a, **k: batches.append(len(a[0])) or real(*a, **k))
    assert load_settings().ANALYZER_ENGINE == "fast"
    for kind in ("reference", "fast"):
        outcomes = engine.analyse(series[:5], names[:5], load_settings(ANALYZER_ENGINE=kind), NOW)
        assert len(outcomes) == 5
    assert batches == [5]


def test_an_unknown_engine_is_a_settings_error(load_settings: Callable[..., config.Settings]) -> None:
    settings = load_settings().replace(ANALYZER_ENGINE="turbo")
    with pytest.raises(SettingsError, match="ANALYZER_ENGINE"):
        engine.analyse([], [], settings, NOW)


def test_blocks_split_and_mixed_lengths_keep_the_order(
    load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    names, series, _ = corpus("corpus_60s")
    # Blocks of a few rows: the 1,440-point series span many blocks, interleaved with other lengths.
    monkeypatch.setattr(batch, "BLOCK_BYTES", 3 * 8 * 1440)
    fast, reference = both(series, names, load_settings())
    assert fast == reference
    assert [o.name for o in fast] == names


def test_run_metrics_count_the_runs_of_the_reference(
    load_settings: Callable[..., config.Settings], tmp_path: Path
) -> None:
    names, series, _ = corpus("corpus_60s")
    settings = load_settings()
    counts = {}
    for kind in ("fast", "reference"):
        tmp_dir = tmp_path / kind
        reset_run_metrics(tmp_dir, list(settings.ALGORITHMS))
        recorder = RunMetricsRecorder(tmp_dir)
        engine.analyse(series, names, settings.replace(ANALYZER_ENGINE=kind), NOW, recorder=recorder)
        recorder.flush()
        counts[kind] = collect_run_metrics(tmp_dir, list(settings.ALGORITHMS))
    assert {a: t.times_run for a, t in counts["fast"].items()} == {
        a: t.times_run for a, t in counts["reference"].items()
    }
    assert all(t.total_time > 0 for t in counts["fast"].values())


def test_no_run_metrics_when_disabled(load_settings: Callable[..., config.Settings], tmp_path: Path) -> None:
    names, series, _ = corpus("corpus_60s")
    settings = load_settings(ENABLE_ALGORITHM_RUN_METRICS=False)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    recorder = RunMetricsRecorder(metrics_dir)
    engine.analyse(series, names, settings, NOW, recorder=recorder)
    recorder.flush()
    assert list(metrics_dir.iterdir()) == []


def _lagged(seconds: int, points: int = 50) -> Series:
    end = NOW - seconds
    return Series.from_pairs([[end - 60 * (points - 1 - i), float(i % 7)] for i in range(points)])


def test_stale_digest_and_second_order_go_through_redis_alike(
    load_settings: Callable[..., config.Settings], redis_conn: object
) -> None:
    names, series, _ = corpus("corpus_60s")
    lagging = [_lagged(s) for s in (100, 299, 300, 420, 499, 500, 501)]
    series = series + lagging
    names = names + [f"metrics.lagging.{i}" for i in range(len(lagging))]
    settings = load_settings(ENABLE_SECOND_ORDER=True)
    seen = {}
    for kind in ("fast", "reference"):
        redis_conn.flushall()
        # The worker's sequence: stale candidates, the engine's consensus, then the second-order check.
        history.record_stale_candidates(redis_conn, settings, series, names, NOW)
        consensus = engine.analyse(series, names, settings.replace(ANALYZER_ENGINE=kind), NOW)
        outcomes = history.apply_second_order(redis_conn, settings, consensus, NOW)
        state = {key: redis_conn.dump(key) for key in redis_conn.keys("*")}
        seen[kind] = (outcomes, state)
    assert seen["fast"] == seen["reference"]
    outcomes, state = seen["fast"]
    assert b"analyzer.alert_on_stale_metrics" in state
    stale = redis_conn.smembers("analyzer.alert_on_stale_metrics")
    mine = {m for m in stale if m.startswith(b"metrics.lagging.")}
    assert mine == {b"metrics.lagging.2", b"metrics.lagging.3", b"metrics.lagging.4"}
    assert any(k.startswith(b"trigger_history.") for k in state)
    assert any(o.verdict is not None and o.verdict.anomalous for o in outcomes)


def test_an_algorithm_failing_in_a_batch_falls_back_to_the_reference(
    load_settings: Callable[..., config.Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    names, series, _ = corpus("corpus_60s")

    def broken(block: batched.Block, rows: np.ndarray) -> np.ndarray:
        raise FloatingPointError("simulated")

    monkeypatch.setitem(batched.BATCHED, "grubbs", broken)
    fast, reference = both(series, names, load_settings())
    assert fast == reference


def test_check_reference_flag_gives_the_same_output(make_settings: Callable[..., Path], tmp_path: Path) -> None:
    data = vector_input("corpus_60s")
    subset = {name: data[name] for name in sorted(data)[::10]}
    path = tmp_path / "input.json"
    path.write_text(json.dumps(subset))
    settings = make_settings()
    outputs = []
    for extra in ((), ("--reference",)):
        completed = run_cli(settings, "check", str(path), "--now", str(NOW), *extra, check=True)
        outputs.append(json.loads(completed.stdout))
    assert outputs[0] == outputs[1]
    assert set(outputs[0]) == set(subset)
    assert any(r["anomalous"] for r in outputs[0].values())


@pytest.mark.parametrize("consensus", [1, 9, 10])
def test_consensus_extremes_match_the_reference(consensus: int, load_settings: Callable[..., config.Settings]) -> None:
    """CONSENSUS 1 and 9 reach the ends of the early exit; 10 (rejected by settings validation, set here
    programmatically) makes consensus impossible, yet the reference still runs the first algorithm."""
    names, series, _ = corpus("corpus_60s")
    fast, reference = both(series, names, load_settings().replace(CONSENSUS=consensus))
    assert fast == reference


def test_a_decoded_chunk_is_analysed_in_place_and_anything_else_is_copied() -> None:
    owner = np.arange(40.0).reshape(8, 5).copy()  # owns its memory, as the decoder's blocks do
    stamps = owner + 1000.0

    def row(k: int, claimed: int | None = None) -> Series:
        return Series(stamps[k], owner[k], float(stamps[k, -1]), float(owner[k, -1]), k if claimed is None else claimed)

    view = batch._stack([row(2), row(3), row(4)], "values", 5)
    assert np.shares_memory(view, owner) and view.tolist() == owner[2:5].tolist()
    assert np.shares_memory(batch._stack([row(2), row(3)], "timestamps", 5), stamps)
    loose = Series(np.arange(5.0), np.arange(5.0), 4.0, 4.0)
    # out of order, not consecutive, not a row, and a row claiming to be another: each copied
    for scattered in ([row(4), row(3)], [row(1), row(3)], [row(2), loose], [row(2), row(4, claimed=3)]):
        copied = batch._stack(scattered, "values", 5)
        assert not np.shares_memory(copied, owner)
        assert copied.tolist() == [one.values.tolist() for one in scattered]
    # the decoder gives a chunk's equal-length series as such rows, so a chunk's block is not copied
    raws = [b"".join(msgpack.packb((1_700_000_000 + 60 * i, float(i * k))) for i in range(100)) for k in range(4)]
    decoded = codec.decode_many(raws, [f"metrics.m{k}" for k in range(4)])
    assert [one.row for one in decoded] == [0, 1, 2, 3]
    assert np.shares_memory(batch._stack(decoded, "values", 100), decoded[0].values)
    # the block is read-only either way: an algorithm writing into it would change the series it came from
    for block in (view, batch._stack([row(4), row(3)], "values", 5)):
        with pytest.raises(ValueError):
            block[0, 0] = 1.0
