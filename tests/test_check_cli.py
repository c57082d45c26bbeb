"""`skyline-analyzer check`: input formats, output format, and clear errors on malformed input."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import run_cli

NOW = 1_700_000_000
SPIKE = [[NOW - 60 * (99 - i), 1 + i % 2] for i in range(97)] + [[NOW - 120, 900], [NOW - 60, 900], [NOW, 900]]


@pytest.fixture
def check(make_settings: Callable[..., Path]) -> Callable[..., subprocess.CompletedProcess]:
    settings = make_settings()

    return lambda *args: run_cli(settings, "check", *args)


def test_json_output_format(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"spike": SPIKE, "empty": []}))
    completed = check(str(path), "--now", str(NOW))
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert out["empty"] == {"anomalous": False, "ensemble": None, "datapoint": None, "exception": "TooShort",
                            "triggered": []}
    spike = out["spike"]
    assert spike["anomalous"] is True and spike["exception"] is None and spike["datapoint"] == 900
    assert len(spike["ensemble"]) == 9
    assert "median_absolute_deviation" in spike["triggered"] and "ks_test" not in spike["triggered"]
    assert "2 series: 1 anomalous, 1 TooShort" in completed.stderr
    assert "anomalous: spike = 900" in completed.stderr


def test_gzip_csv_and_output_file_agree(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    (tmp_path / "in.json.gz").write_bytes(gzip.compress(json.dumps({"spike": SPIKE}).encode()))
    (tmp_path / "spike.csv").write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in SPIKE))
    from_gzip = check(str(tmp_path / "in.json.gz"), "--now", str(NOW), "--output", str(tmp_path / "a.json"))
    from_csv = check(str(tmp_path / "spike.csv"), "--now", str(NOW), "--output", str(tmp_path / "b.json"))
    assert from_gzip.returncode == from_csv.returncode == 0
    assert from_gzip.stdout == ""
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_all_algorithms_flag_runs_every_algorithm(check: Callable[..., subprocess.CompletedProcess],
                                                  tmp_path: Path) -> None:
    sine = [[NOW - 60 * (1440 - i), 100 + 10 * math.sin(i / 10)] for i in range(1440)] + [[NOW, 60.0]]
    path = tmp_path / "sine.json"
    path.write_text(json.dumps({"sine": sine}))
    optimized = json.loads(check(str(path), "--now", str(NOW)).stdout)["sine"]["ensemble"]
    everything = json.loads(check(str(path), "--now", str(NOW), "--all-algorithms").stdout)["sine"]["ensemble"]
    assert optimized.count(True) == 1 and everything.count(True) == 3


def test_now_defaults_to_the_wall_clock(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    end = int(time.time())
    path = tmp_path / "recent.json"
    path.write_text(json.dumps({"recent": [[t - NOW + end, v] for t, v in SPIKE], "old": SPIKE}))
    out = json.loads(check(str(path)).stdout)
    assert out["recent"]["anomalous"] is True and out["old"]["exception"] == "Stale"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": [[1, 2], [2, 3]', "bad JSON at line 1"),
        ('{"a": [[1, 2], [2, "x"]]}', "a: datapoint 1 has a non-numeric value: 'x'"),
        ('{"a": [[1, 2], [2, NaN]]}', "a: datapoint 1 has a non-finite value: nan"),
        ('{"a": [[1, 2], [2, Infinity]]}', "a: datapoint 1 has a non-finite value: inf"),
        ('{"a": [[1, 2], [2, true]]}', "a: datapoint 1 has a non-numeric value: True"),
        ('{"a": [[1, 2], [2, 3, 4]]}', "a: datapoint 1 is not a [timestamp, value] pair"),
        ('{"a": [[1, 2], [3, 3], [2, 4]]}', "a: datapoint 2 has a out-of-order timestamp 2"),
        ('{"a": [[1, 2], [1, 3]]}', "a: datapoint 1 has a duplicate timestamp 1"),
        ('{"a": {"1": 2}}', "a: expected a list of [timestamp, value] pairs"),
        ("[[1, 2]]", "expected a JSON object of series"),
    ],
)
def test_malformed_json_is_named(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path,
                                 content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    completed = check(str(path))
    assert completed.returncode == 2
    assert message in completed.stderr and completed.stdout == ""


def test_malformed_csv_is_named(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_text("1,2\n2,3\n3,abc\n")
    completed = check(str(path))
    assert completed.returncode == 2 and "load: line 3: non-numeric datapoint" in completed.stderr


def test_missing_file(check: Callable[..., subprocess.CompletedProcess], tmp_path: Path) -> None:
    completed = check(str(tmp_path / "absent.json"))
    assert completed.returncode == 2 and "absent.json" in completed.stderr
