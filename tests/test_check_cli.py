"""`skyline-analyzer check` as a command: output format, inputs (file, gzip, stdin), progress, errors.

The input formats themselves are in test_check_formats.py, hostile input in test_check_hostile.py and
the streaming of large inputs in test_check_stream.py.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import pty
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skyline_analyzer import config
from skyline_analyzer.cli.check_progress import AUTO_DELAY
from tests.support import CLI, run_cli, settings_env

NOW = 1_700_000_000
SPIKE = [[NOW - 60 * (99 - i), 1 + i % 2] for i in range(97)] + [[NOW - 120, 900], [NOW - 60, 900], [NOW, 900]]
ALGORITHMS = list(config.Settings({}).ALGORITHMS)

Check = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def settings_path(make_settings: Callable[..., Path]) -> Path:
    return make_settings()


@pytest.fixture
def check(settings_path: Path) -> Check:
    return lambda *args, **kwargs: run_cli(settings_path, "check", *args, **kwargs)


def assert_one_error(completed: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, nothing on stdout, and exactly one line on stderr: the message, no traceback."""
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.startswith("error :: ") and completed.stderr.count("\n") == 1, completed.stderr
    assert message in completed.stderr


def test_json_output_names_every_vote(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"spike": SPIKE, "empty": []}))
    completed = check(str(path), "--now", str(NOW))
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert list(out) == ["spike", "empty"]  # input order
    assert out["empty"] == {"anomalous": False, "ensemble": None, "datapoint": None, "exception": "TooShort",
                            "triggered": [], "votes": None}
    spike = out["spike"]
    assert spike["anomalous"] is True and spike["exception"] is None and spike["datapoint"] == 900
    assert list(spike["votes"]) == ALGORITHMS
    assert list(spike["votes"].values()) == spike["ensemble"] and len(spike["ensemble"]) == 9
    assert spike["votes"]["median_absolute_deviation"] is True and spike["votes"]["ks_test"] is False
    assert spike["triggered"] == [name for name, vote in spike["votes"].items() if vote]
    # One series per line, between the braces.
    assert completed.stdout.splitlines()[0] == "{" and len(completed.stdout.splitlines()) == 4
    assert "2 series: 1 anomalous, 1 TooShort" in completed.stderr
    assert "anomalous: spike = 900" in completed.stderr


def test_gzip_csv_and_output_file_agree(check: Check, tmp_path: Path) -> None:
    (tmp_path / "in.json.gz").write_bytes(gzip.compress(json.dumps({"spike": SPIKE}).encode()))
    (tmp_path / "spike.csv").write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in SPIKE))
    from_gzip = check(str(tmp_path / "in.json.gz"), "--now", str(NOW), "--output", str(tmp_path / "a.json"))
    from_csv = check(str(tmp_path / "spike.csv"), "--now", str(NOW), "--output", str(tmp_path / "b.json"))
    assert from_gzip.returncode == from_csv.returncode == 0
    assert from_gzip.stdout == ""
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


@pytest.mark.parametrize("compress", [False, True])
def test_stdin(settings_path: Path, tmp_path: Path, compress: bool) -> None:
    data = json.dumps({"spike": SPIKE}).encode()
    completed = subprocess.run([*CLI, "check", "-", "--now", str(NOW)], env=settings_env(settings_path),
                               input=gzip.compress(data) if compress else data, capture_output=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["spike"]["anomalous"] is True


def test_stdin_plain_csv_is_named_stdin_or_by_option(check: Check) -> None:
    text = "".join(f"{t},{v}\n" for t, v in SPIKE)
    assert list(json.loads(check("-", "--now", str(NOW), input=text).stdout)) == ["stdin"]
    assert list(json.loads(check("-", "--now", str(NOW), "--name", "web.load", input=text).stdout)) == ["web.load"]


def test_all_algorithms_flag_runs_every_algorithm(check: Check, tmp_path: Path) -> None:
    sine = [[NOW - 60 * (1440 - i), 100 + 10 * math.sin(i / 10)] for i in range(1440)] + [[NOW, 60.0]]
    path = tmp_path / "sine.json"
    path.write_text(json.dumps({"sine": sine}))
    optimized = json.loads(check(str(path), "--now", str(NOW)).stdout)["sine"]["ensemble"]
    everything = json.loads(check(str(path), "--now", str(NOW), "--all-algorithms").stdout)["sine"]["ensemble"]
    assert optimized.count(True) == 1 and everything.count(True) == 3


def test_now_defaults_to_the_wall_clock(check: Check, tmp_path: Path) -> None:
    end = int(time.time())
    path = tmp_path / "recent.json"
    path.write_text(json.dumps({"recent": [[t - NOW + end, v] for t, v in SPIKE], "old": SPIKE}))
    out = json.loads(check(str(path)).stdout)
    assert out["recent"]["anomalous"] is True and out["old"]["exception"] == "Stale"


def test_progress_bar_on_request_only(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"spike": SPIKE, "other": SPIKE}))
    shown = check(str(path), "--now", str(NOW), "--progress")
    assert shown.returncode == 0
    assert "100%" in shown.stderr and "2 series" in shown.stderr
    # stderr is a pipe here: no bar unless asked for, and never when refused.
    for args in ((), ("--no-progress",)):
        quiet = check(str(path), "--now", str(NOW), *args)
        assert "%" not in quiet.stderr and quiet.stderr.startswith("2 series: 2 anomalous")


def test_progress_bar_by_default_on_a_terminal_once_the_run_lasts(settings_path: Path) -> None:
    """stderr is a terminal: the bar appears once the run has lasted AUTO_DELAY seconds."""
    master, slave = pty.openpty()
    process = subprocess.Popen([*CLI, "check", "-", "--now", str(NOW), "--chunk-series", "1"],
                               env=settings_env(settings_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=slave)
    os.close(slave)
    assert process.stdin is not None and process.stdout is not None
    with ThreadPoolExecutor(2) as pool:
        stdout = pool.submit(process.stdout.read)
        terminal = pool.submit(read_terminal, master)
        batch = ",".join(f'"s{n}": {json.dumps(SPIKE)}' for n in range(500))  # over a megabyte: read at once
        process.stdin.write(b"{" + batch.encode())
        process.stdin.flush()
        time.sleep(AUTO_DELAY + 1.5)
        process.stdin.write(b"," + batch.replace('"s', '"t').encode() + b"}")
        process.stdin.close()
        assert process.wait(timeout=60) == 0
        assert len(json.loads(stdout.result(timeout=10))) == 1000
        text = terminal.result(timeout=10)
    assert "1000 series: 1000 anomalous" in text
    assert "check:" in text and " series]" in text, text[:500]


def read_terminal(master: int) -> str:
    """Everything written to a pseudo-terminal until the other side is closed; closes ``master``."""
    data = b""
    with contextlib.suppress(OSError):  # EIO once the child's side is closed
        while chunk := os.read(master, 65536):
            data += chunk
    os.close(master)
    return data.decode(errors="replace")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"a": [[1, 2], [2, 3]', "line 1 column 22: bad JSON in series a"),
        ('{"a": [[1, 2], [2, "x"]]}', "line 1 column 7: a: datapoint 1 has a non-numeric value: 'x'"),
        ('\n\n[{"target": "t", "datapoints": [[1, 5], [null, 6], [2, 4]]}]',
         "line 3 column 2: t: datapoint 2 has a out-of-order timestamp 4 (previous 5)"),
    ],
)
def test_malformed_json_is_one_message(check: Check, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    completed = check(str(path))
    assert_one_error(completed, message)
    assert f"{path}: line " in completed.stderr


def test_malformed_csv_is_one_message(check: Check, tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_text("1,2\n2,3\n3,abc\n")
    assert_one_error(check(str(path)), "load.csv: line 3: non-numeric value 'abc'")


def test_failed_run_leaves_the_output_file_alone(check: Check, tmp_path: Path) -> None:
    directory = tmp_path / "work"
    directory.mkdir()
    out = directory / "out.json"
    out.write_text("previous\n")
    (directory / "bad.json").write_text('{"a": [[1, 2]], "b": [[1, "x"]]}')
    assert_one_error(check(str(directory / "bad.json"), "--output", str(out)), "b: datapoint 0")
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in directory.iterdir()) == ["bad.json", "out.json"]


def test_missing_file_and_bad_options(check: Check, tmp_path: Path) -> None:
    assert_one_error(check(str(tmp_path / "absent.json")), "absent.json")
    for args, message in ((("--tz", "Mars/Olympus"),  "unknown time zone"), (("--now", "nan"), "finite"),
                          (("--max-points", "0"), "at least 1")):
        completed = check(str(tmp_path / "absent.json"), *args)
        assert completed.returncode == 2 and message in completed.stderr and "Traceback" not in completed.stderr
