"""`check`'s input formats: Graphite render exports (CSV and JSON), plain CSV, format detection, time zones.

No graphite-web runs here (none is installed on the test machines), so the Graphite fixtures are written
by hand after the formats documented for graphite-web's render API: ``format=csv`` writes
``name,YYYY-mm-dd HH:MM:SS,value`` lines with Python's csv module (excel dialect: CRLF line ends, a name
holding a comma quoted, an empty field for a null), the time in the server's time zone; ``format=json``
writes ``[{"target": name, "datapoints": [[value, timestamp], ...]}]`` with ``null`` values (and, from
1.1 on, a ``tags`` object). The documentation's own example is used as the first fixture.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from skyline_analyzer import synthetic
from skyline_analyzer.cli.datapoints import series_from_pairs
from skyline_analyzer.cli.series_file import ReadOptions, detect_format, read_series_file
from skyline_analyzer.cli.series_input import open_source
from skyline_analyzer.cli.series_limits import Limits
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError
from tests.support import run_cli

# The render API documentation's example, with a null added in each format and a second, empty series.
DOC_JSON = """[{
  "target": "entries",
  "tags": {"name": "entries"},
  "datapoints": [
    [1.0, 1311836008],
    [2.0, 1311836009],
    [null, 1311836010],
    [5.0, 1311836011],
    [6.0, 1311836012]
  ]
}, {"target": "sumSeries(a.*,b)", "datapoints": [[null, 1311836008], [null, 1311836009]]}]
"""
DOC_CSV = (
    "entries,2011-07-28 01:53:28,1.0\r\n"
    "entries,2011-07-28 01:53:29,2.0\r\n"
    "entries,2011-07-28 01:53:30,\r\n"
    "entries,2011-07-28 01:53:31,5.0\r\n"
    "entries,2011-07-28 01:53:32,6.0\r\n"
    '"sumSeries(a.*,b)",2011-07-28 01:53:28,\r\n'
    '"sumSeries(a.*,b)",2011-07-28 01:53:29,\r\n'
)
# The example's CSV times are the JSON timestamps in US Central summer time.
DOC_ZONE = ZoneInfo("America/Chicago")
NOW = 1_700_000_000


def read(tmp_path: Path, content: str | bytes, name: str = "input", **options: object) -> dict[str, Series]:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, newline="")
    else:
        path.write_bytes(content)
    return read_series_file(path, ReadOptions(**options))  # type: ignore[arg-type]


def same(a: Series, b: Series) -> bool:
    return (np.array_equal(a.timestamps, b.timestamps) and np.array_equal(a.values, b.values)
            and (a.last_timestamp, a.last_value) == (b.last_timestamp, b.last_value))


def test_graphite_json_documented_example(tmp_path: Path) -> None:
    series = read(tmp_path, DOC_JSON)
    assert list(series) == ["entries", "sumSeries(a.*,b)"]
    entries = series["entries"]
    assert entries.timestamps.tolist() == [1311836008, 1311836009, 1311836011, 1311836012]
    assert entries.values.tolist() == [1.0, 2.0, 5.0, 6.0]
    assert (entries.last_timestamp, entries.last_value) == (1311836012, 6.0)
    assert len(series["sumSeries(a.*,b)"]) == 0


def test_graphite_csv_documented_example_matches_the_json(tmp_path: Path) -> None:
    from_csv = read(tmp_path, DOC_CSV, zone=DOC_ZONE)
    from_json = read(tmp_path, DOC_JSON, name="other")
    assert list(from_csv) == list(from_json)
    assert all(same(from_csv[name], from_json[name]) for name in from_json)
    # In UTC the same lines are five hours earlier.
    in_utc = read(tmp_path, DOC_CSV, name="utc")["entries"]
    assert in_utc.timestamps[0] == datetime(2011, 7, 28, 1, 53, 28, tzinfo=UTC).timestamp() == 1311818008


def graphite_exports(metrics: dict[str, list[list]], nulls: set[int]) -> tuple[str, str]:
    """The Graphite CSV and JSON of ``metrics``, with a null before each point whose index is in ``nulls``."""
    csv_lines, elements = [], []
    for name, pairs in metrics.items():
        points: list[list] = []
        for index, (timestamp, value) in enumerate(pairs):
            if index in nulls:
                points.append([None, timestamp - 30])
            points.append([value, timestamp])
        elements.append({"target": name, "datapoints": points})
        for value, timestamp in points:
            moment = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
            field = f'"{name}"' if "," in name else name
            text = "" if value is None else repr(value)
            csv_lines.append(f"{field},{moment},{text}\r\n")
    return "".join(csv_lines), json.dumps(elements)


def test_graphite_exports_give_the_verdicts_of_the_series_without_nulls(
        make_settings: Callable[..., Path], tmp_path: Path) -> None:
    metrics = synthetic.make_metrics(6, NOW, anomalous=2, points=400)
    csv_text, json_text = graphite_exports(metrics, nulls={5, 100, 399})
    (tmp_path / "object.json").write_text(json.dumps(metrics))
    (tmp_path / "render.csv").write_text(csv_text, newline="")
    (tmp_path / "render.json").write_text(json_text)
    settings = make_settings()
    outputs = []
    for name in ("object.json", "render.csv", "render.json"):
        completed = run_cli(settings, "check", str(tmp_path / name), "--now", str(NOW))
        assert completed.returncode == 0, completed.stderr
        outputs.append(json.loads(completed.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    assert sum(entry["anomalous"] for entry in outputs[0].values()) == 2


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('  \n {"a": []}', "json"),
        ('\n[{"target": "a", "datapoints": []}]', "graphite-json"),
        ("\n\nname,2011-07-28 01:53:28,1.0\n", "graphite-csv"),
        ('"a,b",2011-07-28 01:53:28,\n', "graphite-csv"),
        ("timestamp,value\n1,2\n", "csv"),
        ("1700000000,2", "csv"),
        ("", None),
        (" \n\n ", None),
    ],
)
def test_format_is_told_from_the_content(tmp_path: Path, head: str, expected: str | None) -> None:
    path = tmp_path / "input"
    path.write_text(head)
    source = open_source(str(path))
    try:
        assert detect_format(source, Limits()) == expected
        assert source.read(len(head) + 1) == head  # what was looked at is read again
    finally:
        source.close()


def test_format_option_overrides_detection(tmp_path: Path) -> None:
    with pytest.raises(SeriesFormatError, match="line 1: expected 2 fields, timestamp,value; got 3"):
        read(tmp_path, DOC_CSV, format="csv")
    with pytest.raises(SeriesFormatError, match="expected a JSON object of series"):
        read(tmp_path, DOC_JSON, format="json")
    assert read(tmp_path, "1,2\n2,3\n", name="x.txt", format="csv")["x"].values.tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    ("content", "timestamps"),
    [
        ("timestamp,value\n1700000000,5\n1700000060,6\n", [1700000000, 1700000060]),
        ("\n\n ts , value \n1700000000,5\n", [1700000000]),
        ("2023-11-14T22:13:20Z,5\n2023-11-14 22:14:20,6\n", [1700000000, 1700000060]),
        ("2023-11-14T23:13:20+01:00,5\n1700000060.5,6\n", [1700000000, 1700000060.5]),
        ("2023-11-14,5\n", [1699920000]),
        (" 1700000000 , 5 \r\n", [1700000000]),
    ],
)
def test_plain_csv_times_and_header(tmp_path: Path, content: str, timestamps: list[float]) -> None:
    series = read(tmp_path, content, name="load.csv")["load"]
    assert series.timestamps.tolist() == timestamps


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2023-11-14T22:13:20x,5\n", "line 1: the timestamp is neither epoch seconds nor an ISO 8601 time: "
                                     "'2023-11-14T22:13:20x'"),
        ("time1,value\n1,2\n", "line 1: the timestamp is neither"),
        ("1,2\n\ntimestamp,value\n", "line 3: the timestamp is neither"),
        ("1,2\n2,\n", "line 2: non-numeric value ''"),
        ("1,2\n2,nan\n", "line 2: non-numeric value 'nan'"),
        ("1,2\n2,1e999\n", "line 2: non-finite value '1e999'"),
        ("1,2\n2,1_000\n", "line 2: non-numeric value '1_000'"),
        ("1,2\n1,3\n", "line 2: load: duplicate timestamp 1 (previous 1)"),
        ("1,2\n2,3,4\n", "line 2: expected 2 fields, timestamp,value; got 3"),
    ],
)
def test_plain_csv_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(SeriesFormatError) as caught:
        read(tmp_path, content, name="load.csv")
    assert str(caught.value).startswith(str(tmp_path / "load.csv") + ": line ")
    assert message in str(caught.value)


def test_csv_times_in_a_zone_across_the_end_of_summer_time(tmp_path: Path) -> None:
    """Paris, 29 October 2023: 02:00-02:59 occurs twice; written by Graphite from epochs, read back in order."""
    zone = ZoneInfo("Europe/Paris")
    start = int(datetime(2023, 10, 28, 23, 0, tzinfo=UTC).timestamp())  # 01:00 CEST
    epochs = [start + 60 * i for i in range(240)]
    local = [datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M:%S") for t in epochs]
    assert len(set(local)) == 180  # one hour of local times appears twice
    text = "".join(f"paris,{moment},{i}\r\n" for i, moment in enumerate(local))
    assert read(tmp_path, text, zone=zone)["paris"].timestamps.tolist() == epochs
    # The same after a megabyte of another series, where the reader converts whole blocks.
    padding = "".join(f"pad,{NOW + i},1\n" for i in range(80_000))
    assert len(padding) > 2**20
    series = read(tmp_path, padding + text, name="padded", zone=zone)
    assert series["paris"].timestamps.tolist() == epochs and len(series["pad"]) == 80_000
    plain = read(tmp_path, "".join(f"{moment},{i}\n" for i, moment in enumerate(local)), name="p.csv", zone=zone)
    assert plain["p"].timestamps.tolist() == epochs


def test_block_and_line_readings_agree(tmp_path: Path) -> None:
    """A multi-megabyte Graphite CSV (read in blocks, converted by numpy) gives the arrays the JSON gives,
    to the bit, also when a later block holds a blank line or a quoted name (read line by line)."""
    rng = random.Random(7)
    metrics = {}
    for n in range(40):
        values = [rng.choice([rng.uniform(-1e6, 1e6), rng.randint(-10**6, 10**6), rng.uniform(0, 1e-300),
                              float(rng.randint(0, 2**60)), -0.0]) for _ in range(1440)]
        metrics[f"m.{n}"] = [[NOW - 60 * (1440 - i), v] for i, v in enumerate(values)]
    csv_text, json_text = graphite_exports(metrics, nulls={0, 700, 1439})
    # The same lines with one series' name quoted (the same name to a CSV reader) and a blank line.
    lines = [f'"m.30",{line.removeprefix("m.30,")}' if line.startswith("m.30,") else line
             for line in csv_text.split("\r\n")]
    variants = {"blocks": csv_text, "lines": "\r\n".join([*lines[:50000], "", *lines[50000:]])}
    from_json = read(tmp_path, json_text, name="render.json")
    assert len(csv_text) > 2 * 2**20
    for label, text in variants.items():
        from_csv = read(tmp_path, text, name=f"{label}.csv")
        assert list(from_csv) == list(from_json), label
        for name, series in from_json.items():
            assert same(from_csv[name], series), (label, name)
            assert np.array_equal(np.signbit(from_csv[name].values), np.signbit(series.values))


def test_json_pairs_convert_as_the_reference_does() -> None:
    rng = random.Random(3)
    for _ in range(200):
        pairs = [[rng.choice([rng.randint(-2**70, 2**70), rng.uniform(-1e300, 1e300), rng.randint(0, 10)]),
                  rng.choice([rng.random(), rng.randint(-5, 5), -0.0, 5e-324])] for _ in range(rng.randint(1, 30))]
        pairs.sort(key=lambda pair: pair[0])
        if len({pair[0] for pair in pairs}) < len(pairs):
            continue
        ours = series_from_pairs("s", pairs, graphite=False, max_points=100)
        reference = Series.from_pairs(pairs, "s")
        assert same(ours, reference)
        assert np.array_equal(np.signbit(ours.values), np.signbit(reference.values))
        assert type(ours.last_value) is type(reference.last_value)


def test_check_reads_graphite_csv_from_stdin_in_its_zone(make_settings: Callable[..., Path]) -> None:
    settings = make_settings()
    outputs = {}
    for zone in ("America/Chicago", "UTC"):
        completed = run_cli(settings, "check", "-", "--tz", zone, "--now", "1311836012", input=DOC_CSV)
        assert completed.returncode == 0, completed.stderr
        outputs[zone] = json.loads(completed.stdout)
        assert list(outputs[zone]) == ["entries", "sumSeries(a.*,b)"]
        assert outputs[zone]["sumSeries(a.*,b)"]["exception"] == "TooShort"
    # Read in UTC, the last point is five hours before --now.
    assert outputs["America/Chicago"]["entries"]["exception"] != "Stale"
    assert outputs["UTC"]["entries"]["exception"] == "Stale"
