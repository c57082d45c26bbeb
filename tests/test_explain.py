"""The explanation's votes are the detectors' votes: ``/api/explain`` and ``explain`` against ``check``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from skyline_analyzer import config
from skyline_analyzer.detection.explain import explain
from skyline_analyzer.detection.series import Series
from tests.support import CORPORA, VECTORS, run_cli, vector_expected, vector_input
from tests.webapp_server import WebappServer, store_series


def check_all_algorithms(settings_path: Path, corpus: str, now: int) -> dict:
    completed = run_cli(settings_path, "check", str(VECTORS / f"{corpus}.input.json.gz"), "--now", str(now),
                        "--all-algorithms", check=True)
    return json.loads(completed.stdout)


@pytest.mark.parametrize("corpus", CORPORA)
def test_votes_equal_check_all_algorithms(corpus: str, make_settings: Callable[..., Path]) -> None:
    settings_path = make_settings()
    settings = config.load(settings_path)
    now = vector_expected(corpus)["now"]
    checked = check_all_algorithms(settings_path, corpus, now)
    mismatches = []
    for name, pairs in vector_input(corpus).items():
        found = explain(Series.from_pairs(pairs, name), settings, now)
        want = checked[name]
        if want["exception"] is not None:
            observed, wanted = (found.exception, found.anomalous), (want["exception"], False)
        else:
            observed = (found.exception, found.anomalous, [r.vote for r in found.reasons])
            wanted = (None, want["anomalous"], want["ensemble"])
        if observed != wanted:
            mismatches.append((name, observed, wanted))
    assert mismatches == []


def test_figures_decide_the_vote(load_settings: Callable[..., config.Settings]) -> None:
    """Every plain comparison shown is the one that decided: statistic > threshold iff the vote is True."""
    settings = load_settings()
    now = vector_expected("corpus_60s")["now"]
    compared = 0
    for name, pairs in vector_input("corpus_60s").items():
        for reason in explain(Series.from_pairs(pairs, name), settings, now).reasons:
            plain = reason.algorithm not in ("histogram_bins", "least_squares", "ks_test")
            if plain and reason.statistic is not None and reason.threshold is not None:
                assert (reason.statistic > reason.threshold) is reason.vote, (name, reason)
                compared += 1
            if reason.algorithm == "histogram_bins" and reason.statistic is not None:
                assert (reason.statistic <= reason.threshold) is reason.vote, (name, reason)
    assert compared > 1000


def test_api_explain_agrees_with_check_on_the_vectors(make_settings: Callable[..., Path],
                                                      redis_conn: redis.Redis) -> None:
    corpus = "corpus_60s"
    settings_path = make_settings()
    now = vector_expected(corpus)["now"]
    series = vector_input(corpus)
    checked = check_all_algorithms(settings_path, corpus, now)
    # An empty series cannot be stored (Horizon never writes one): those stay for the in-process test.
    stored = {name: pairs for name, pairs in series.items() if pairs}
    store_series(redis_conn, config.load(settings_path), stored)
    mismatches = []
    with WebappServer(settings_path) as server:
        for name in stored:
            status, _, body = server.get(f"/api/explain?metric={quote(name, safe='')}&now={now}")
            assert status == 200, body
            got = json.loads(body)
            want = checked[name]
            observed = (got["exception"], got["anomalous"])
            wanted = (want["exception"], want["anomalous"])
            if want["exception"] is None:
                observed += ([r["vote"] for r in got["algorithms"]],)
                wanted += (want["ensemble"],)
            if observed != wanted:
                mismatches.append((name, observed, wanted))
    assert mismatches == []
