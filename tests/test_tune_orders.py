"""Any ALGORITHMS order gives the default order's verdicts on the golden vectors, with both engines.

This is what makes ``skyline-analyzer tune``'s advice safe: the early exit stops only once the verdict
is "not anomalous" whatever the remaining votes, and a None is not a False in either count, so reordering
can change which algorithms run (and so what a skipped one shows), never the verdict. For every drawn
order and CONSENSUS, each series' verdict is the one the default order's complete vector gives, every
algorithm that ran voted as in that vector, and an anomalous series triggered the same algorithms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyline_analyzer import config
from skyline_analyzer.defaults import ALGORITHM_NAMES
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.series import Series
from tests.support import CORPORA, vector_expected, vector_input

EXAMPLES = 6


@functools.cache
def corpora() -> tuple[list[Series], list[str], list[dict], int]:
    series, names, expected = [], [], []
    for corpus in CORPORA:
        data, want = vector_input(corpus), vector_expected(corpus)
        for name in sorted(data):
            series.append(Series.from_pairs(data[name], name))
            names.append(name)
            expected.append(want["series"][name])
    # Both corpora were analysed at the same `now`.
    return series, names, expected, vector_expected(CORPORA[0])["now"]


def ran_in(order: list[str], full: dict[str, object], consensus: int) -> int:
    """How many algorithms of ``order`` run on a series whose complete votes are ``full``."""
    max_false, falses = len(order) - consensus + 1, 0
    for position, name in enumerate(order):
        falses += full[name] is False
        if falses >= max_false:
            return position + 1
    return len(order)


@pytest.mark.parametrize("engine_name", ["fast", "reference"])
def test_any_order_gives_the_default_orders_verdicts(
    engine_name: str, load_settings: Callable[..., config.Settings]
) -> None:
    base = load_settings()
    series, names, expected, now = corpora()
    default = list(ALGORITHM_NAMES)
    assert list(base.ALGORITHMS) == default
    checked = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.permutations(default), st.integers(1, len(default)))
    def same_verdicts(order: list[str], consensus: int) -> None:
        chosen = base.replace(ALGORITHMS=order, CONSENSUS=consensus, ANALYZER_ENGINE=engine_name)
        for outcome, want in zip(engine.analyse(series, names, chosen, now), expected, strict=True):
            assert outcome.exception == want["exception"], outcome.name
            if want["exception"]:
                continue
            full = dict(zip(default, want["ensemble_all"], strict=True))
            anomalous = list(full.values()).count(False) <= len(default) - consensus
            verdict = outcome.verdict
            assert verdict.anomalous == anomalous, (outcome.name, order, consensus)
            if consensus == base.CONSENSUS:
                assert verdict.anomalous == want["anomalous"], outcome.name
            ran = ran_in(order, full, consensus)
            assert verdict.ensemble == [full[n] for n in order[:ran]] + [False] * (len(order) - ran), outcome.name
            if anomalous:
                assert set(verdict.triggered(order)) == {n for n, vote in full.items() if vote}, outcome.name
        checked.append(order)

    same_verdicts()
    assert len(checked) == EXAMPLES
