"""Hostile input to `check`: every element and line is bounded, refused with its position in one message.

Most cases read the file in-process (the reader raises one SeriesFormatError); the last test runs the
command on each of them to see exit status 2, one line on stderr and no traceback.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from skyline_analyzer.cli.series_file import ReadOptions, read_series_file
from skyline_analyzer.cli.series_limits import Limits
from skyline_analyzer.exceptions import SeriesFormatError
from tests.support import run_cli

SMALL = Limits(max_points=100, max_name=32, max_series=5)

# name -> (file content, the message's expected part)
CASES: dict[str, tuple[bytes, str]] = {
    "deep nesting": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                     "line 1 column 7: series a is nested too deeply"),
    "deep graphite": (b"[" * 100_000, "line 1 column 2: Graphite series 0 is nested too deeply"),
    "long element": (b'{"a": [' + b" " * 20_000 + b"]}", "line 1 column 7: series a is longer than"),
    "too many points": (json.dumps({"a": [[i, 1] for i in range(101)]}).encode(),
                        "a: 101 datapoints, more than the limit of 100 (--max-points)"),
    "long name": (json.dumps({"n" * 33: []}).encode(), "line 1 column 2: a series name of 33 characters"),
    "escaped long name": (b'{"' + b"\\u0041" * 2000 + b'": []}', "line 1 column 2: a series name is longer than"),
    "too many series": (json.dumps({str(i): [] for i in range(6)}).encode(),
                        "line 1 column 47: more than 5 series (--max-series)"),
    "duplicate json": (b'{"a": [],\n "a": [[1, 2]]}', "line 2 column 2: series a appears a second time"),
    "duplicate graphite": (b'[{"target": "a", "datapoints": []},\n{"target": "a", "datapoints": []}]',
                           "line 2 column 1: series a appears a second time"),
    "duplicate graphite csv": (b"a,2023-01-01 00:00:00,1\nb,2023-01-01 00:00:00,1\na,2023-01-01 00:01:00,1\n",
                               "line 3: series a appears a second time"),
    "huge integer": (b'{"a": [[1, ' + b"9" * 5000 + b"]]}", "line 1 column 7: bad number in series a"),
    "beyond float": (b'{"a": [[1, 1' + b"0" * 400 + b"]]}", "a: datapoint 0 has a non-finite value: <int of"),
    "control characters": (b'{"a\\n\\u001b[31mb": [[1, "x"]]}',
                           "a\\n\\x1b[31mb: datapoint 0 has a non-numeric value: 'x'"),
    "long value": (b'{"a": [[1, "' + b"x" * 5000 + b'"]]}', "a: datapoint 0 has a non-numeric value: 'xxxx"),
    "trailing data": (b'{"a": []} {"b": []}', "line 1 column 11: unexpected data after the end"),
    "target not a string": (b'[{"target": 5, "datapoints": []}]', "Graphite series 0: the target is not a string: 5"),
    "not utf-8": (b'{"a": [[1, 2]], "\xff": []}', "not UTF-8 text, near byte"),
    "corrupt gzip": (b"\x1f\x8b" + b"\x00" * 40, "corrupt gzip"),
    "truncated gzip": (gzip.compress(json.dumps({"a": [[1, 2]] * 1000}).encode())[:-30], "corrupt gzip"),
    "long csv line": (b"1,2\n" + b"3," + b"4" * 5000 + b"\n", "line 2: longer than 320 characters"),
    "long csv line at the end": (b"1,2\n" + b"3" * 5000, "line 2: longer than 320 characters"),
    "bad csv quoting": (b'a,2023-01-01 00:00:00,1\n"b,2023-01-01 00:00:00,1\n', "line 2: bad CSV quoting"),
    "csv too many points": (b"".join(b"%d,1\n" % i for i in range(101)), "line 101: input: more than 100"),
    "csv out of order": (b"".join(b"s,%d,1\n" % t for t in (1, 2, 3, 2)), "line 4: s: out-of-order timestamp 2"),
    "blank space only": (b" " * (2**20 + 400), "nothing but blank space"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bounded_and_positioned(tmp_path: Path, case: str) -> None:
    content, message = CASES[case]
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(SeriesFormatError) as caught:
        read_series_file(path, ReadOptions(limits=SMALL))
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text, text
    assert "\n" not in text and len(text) < len(str(path)) + 300


def test_large_csv_blocks_are_bounded_too(tmp_path: Path) -> None:
    """A long line in a later block (converted whole) is refused with its own line number."""
    lines = [b"s,%d,1" % (1_700_000_000 + i) for i in range(100_000)]
    lines[90_000] = b"s,1700090000," + b"1" * 400
    path = tmp_path / "input.csv"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SeriesFormatError, match=r"input.csv: line 90001: longer than 320 characters"):
        read_series_file(path, ReadOptions(limits=Limits(max_name=32)))


def test_empty_input_is_no_series(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    for content in (b"", b"\n \n", b"{}", b"[]", gzip.compress(b"")):
        path.write_bytes(content)
        assert read_series_file(path) == {}


def test_the_command_exits_2_with_one_line(make_settings: Callable[..., Path], tmp_path: Path) -> None:
    settings = make_settings()
    for case in ("deep nesting", "not utf-8", "truncated gzip", "control characters", "long csv line"):
        path = tmp_path / case.replace(" ", "-")
        path.write_bytes(CASES[case][0])
        completed = run_cli(settings, "check", str(path), "--max-name", "32")
        assert completed.returncode == 2, (case, completed.stderr)
        assert completed.stdout == "" and "Traceback" not in completed.stderr, case
        assert completed.stderr.startswith("error :: ") and completed.stderr.count("\n") == 1, case
