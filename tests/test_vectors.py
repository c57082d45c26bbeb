"""The golden vectors of tests/data/vectors: every series, through the `skyline-analyzer check` command."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import CORPORA, VECTORS, run_cli, vector_expected


def _check(input_path: Path, settings: Path, now: int, *extra: str) -> dict:
    completed = run_cli(settings, "check", str(input_path), "--now", str(now), *extra, check=True)
    return json.loads(completed.stdout)


@pytest.mark.parametrize("corpus", CORPORA)
def test_input_is_the_vectored_input(corpus: str) -> None:
    expected = vector_expected(corpus)
    raw = gzip.decompress((VECTORS / f"{corpus}.input.json.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == expected["input_sha256"]


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize(
    ("flags", "ensemble_key"), [((), "ensemble_optimized"), (("--all-algorithms",), "ensemble_all")]
)
def test_check_reproduces_every_series(
    corpus: str, flags: tuple[str, ...], ensemble_key: str, make_settings: Callable[..., Path]
) -> None:
    expected = vector_expected(corpus)
    got = _check(VECTORS / f"{corpus}.input.json.gz", make_settings(), expected["now"], *flags)
    assert set(got) == set(expected["series"])
    mismatches = []
    for name, want in expected["series"].items():
        result = got[name]
        observed = (result["exception"], result["anomalous"], result["datapoint"], result["ensemble"])
        wanted = (want["exception"], want["anomalous"], want["datapoint"], want[ensemble_key])
        # 1 == 1.0 in Python: the type of the datapoint (int stays int) is part of the contract.
        same_type = type(result["datapoint"]) is type(want["datapoint"])
        if observed != wanted or not same_type:
            mismatches.append((name, observed, wanted))
    assert mismatches == []
    triggered = {name: r["triggered"] for name, r in got.items() if r["anomalous"]}
    assert all(triggered.values()), "every anomalous series names the algorithms that voted for it"
