"""The daemon reaches the same verdicts as ``skyline-analyzer check`` on the golden-vector corpora.

The daemon analyses at the wall clock, so every timestamp of a corpus is shifted by
``delta = int(time.time()) - 1700000000`` (the corpus's ``now``) before it is loaded into Redis in the
Horizon format; the test first checks that the shift leaves every verdict unchanged.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from skyline_analyzer import codec, config, keys
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.worker import EXCEPTION_SETS
from tests.support import CORPORA, NO_ALERTS, run_cli, vector_expected, vector_input

CORPUS_NOW = 1700000000


def run_check(series: dict, now: int, settings_path: Path, tmp_path: Path, label: str) -> dict:
    source = tmp_path / f"{label}.json"
    source.write_text(json.dumps(series))
    output = tmp_path / f"{label}.out.json"
    done = run_cli(settings_path, "check", str(source), "--now", str(now), "--output", str(output), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(output.read_text())


@pytest.mark.parametrize("corpus", CORPORA)
def test_daemon_verdicts_equal_check(corpus, make_settings, redis_conn, tmp_path):
    series = vector_input(corpus)
    expected = vector_expected(corpus)["series"]
    delta = int(time.time()) - CORPUS_NOW
    shifted = {name: [[t + delta, v] for t, v in pairs] for name, pairs in series.items()}
    settings_path = make_settings(**NO_ALERTS, ANALYZER_PROCESSES=2, ANOMALY_DUMP=str(tmp_path / "anomalies.json"))

    moved = run_check(shifted, CORPUS_NOW + delta, settings_path, tmp_path, "shifted")
    # The shift leaves every verdict as the golden vectors have it at the corpus's own `now`.
    assert {n: (r["anomalous"], r["exception"], r["datapoint"], r["ensemble"]) for n, r in moved.items()} == {
        n: (r["anomalous"], r["exception"], r["datapoint"], r["ensemble_optimized"]) for n, r in expected.items()
    }

    pipe = redis_conn.pipeline(transaction=False)
    for name, pairs in shifted.items():
        pipe.set(keys.metric("metrics.", name), codec.encode(pairs))
        pipe.sadd(keys.unique_metrics("metrics."), keys.metric("metrics.", name))
    pipe.execute()
    report = Analyzer(config.load(settings_path)).run_once(now=CORPUS_NOW + delta)

    anomalous = {n: r for n, r in moved.items() if r["anomalous"]}
    assert anomalous, "the corpus has anomalous series"
    assert {a.base_name: a.value for a in report.anomalies} == {n: r["datapoint"] for n, r in anomalous.items()}
    for anomaly in report.anomalies:
        assert list(anomaly.triggered) == anomalous[anomaly.base_name]["triggered"]
        assert anomaly.timestamp == shifted[anomaly.base_name][-1][0]
    assert report.exceptions == dict(Counter(r["exception"] for r in moved.values() if r["exception"]))
    assert report.anomaly_breakdown == dict(Counter(a for r in anomalous.values() for a in r["triggered"]))
    for exception, key in EXCEPTION_SETS.items():
        members = {m.decode() for m in redis_conn.smembers(key)}
        names = {m for m in members if not m.startswith(keys.UPDATED_AT_MARKER)}
        assert names == {n for n, r in moved.items() if r["exception"] == exception}
