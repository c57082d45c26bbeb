"""`check` streams its input: results in chunks equal the whole-input results, and memory stays flat.

The 20,000-series measurement is benchmarks/check_large.py; here the growth of traced memory between two
input sizes is asserted, on inputs small enough for the test suite.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from skyline_analyzer import config, synthetic
from skyline_analyzer.cli.check import check_series, check_stream
from skyline_analyzer.cli.check_output import ResultWriter, Summary
from skyline_analyzer.cli.series_file import ReadOptions, read_series, read_series_file
from skyline_analyzer.cli.series_input import open_source
from tests import support

NOW = 1_700_000_000


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return support.load_settings(tmp_path)


def write_metrics(path: Path, count: int, points: int) -> None:
    """A JSON object of ``count`` synthetic series, written one series at a time."""
    stamps = (NOW - 60 * np.arange(points - 1, -1, -1)).tolist()
    with path.open("w") as out:
        out.write("{")
        for n in range(count):
            kind = synthetic.KINDS[n % len(synthetic.KINDS)]
            values = np.round(synthetic.make_values(kind, points, seed=n, spike=n % 25 == 0), 3).tolist()
            pairs = ",".join(f"[{t},{v!r}]" for t, v in zip(stamps, values, strict=True))
            out.write(("," if n else "") + f'\n"s.{kind}.{n}": [{pairs}]')
        out.write("}\n")


def test_chunks_give_the_whole_input_results(tmp_path: Path, settings: config.Settings) -> None:
    metrics = synthetic.make_metrics(40, NOW, anomalous=6, points=300)
    metrics.update({"short": [[NOW, 1]], "empty": []})
    path = tmp_path / "in.json"
    path.write_text(json.dumps(metrics))
    whole = check_series(read_series_file(path), settings, NOW)
    for chunk_series, chunk_points in ((1, 10**6), (7, 10**6), (100, 1000), (3, 1)):
        streamed: list[tuple[str, dict]] = []
        ticks: list[int] = []
        source = open_source(str(path))
        try:
            check_stream(read_series(source, ReadOptions()), settings, NOW,
                         lambda name, entry, out=streamed: out.append((name, entry)),
                         chunk_series=chunk_series, chunk_points=chunk_points, tick=ticks.append)
        finally:
            source.close()
        assert streamed == list(whole.items())
        assert ticks[-1] == len(metrics) and ticks == sorted(ticks)
    assert sum(entry["anomalous"] for entry in whole.values()) == 6


def traced_peak(path: Path, settings: config.Settings, out: Path) -> int:
    """Peak traced bytes of reading, analysing and writing ``path`` in chunks of 50 series."""
    source = open_source(str(path))
    summary = Summary()
    tracemalloc.start()
    try:
        with out.open("w") as stream:
            writer = ResultWriter(stream)

            def write(name: str, entry: dict) -> None:
                writer.write(name, entry)
                summary.add(name, entry)

            check_stream(read_series(source, ReadOptions()), settings, NOW, write, chunk_series=50)
            writer.close()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        source.close()


def test_memory_stays_flat_as_the_input_grows(tmp_path: Path, settings: config.Settings) -> None:
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    write_metrics(small, 150, 600)
    write_metrics(large, 600, 600)
    small_peak = traced_peak(small, settings, tmp_path / "small.out")
    large_peak = traced_peak(large, settings, tmp_path / "large.out")
    assert len(json.loads((tmp_path / "large.out").read_text())) == 600
    # Four times the input (about 3.5 MB more of it) may cost a little more, not four times as much.
    assert large.stat().st_size > 4 * small.stat().st_size * 0.95
    assert large_peak < small_peak * 1.2 + 256 * 1024, (small_peak, large_peak)
