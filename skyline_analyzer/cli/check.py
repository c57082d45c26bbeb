"""``skyline-analyzer check``: run the verdict on series from a file or stdin, with the settings in force.

The input is streamed (docs/check.md): series are read one at a time, analysed in chunks and their
results written as each chunk ends, so memory depends on the chunk bounds, not on the size of the input.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, TextIO

from skyline_analyzer import config
from skyline_analyzer.allocator import tune_allocator
from skyline_analyzer.cli.check_output import ResultWriter, Summary, result
from skyline_analyzer.cli.check_progress import Progress
from skyline_analyzer.cli.series_file import FORMATS, ReadOptions, read_series
from skyline_analyzer.cli.series_input import open_source
from skyline_analyzer.cli.series_limits import MAX_NAME, MAX_POINTS, MAX_SERIES, Limits
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError

#: Default most series analysed together: a chunk is analysed, written and dropped before the next.
CHUNK_SERIES = 1000
#: Default most datapoints in a chunk (16 bytes each as arrays, a few times that while analysed).
CHUNK_POINTS = 2_000_000


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _epoch(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _zone(text: str) -> tzinfo:
    if text.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r:.80}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="analyse series from a file or stdin (JSON, CSV, Graphite render exports)",
        description="Analyse every series in INPUT and print a JSON verdict per series (docs/check.md).",
    )
    parser.add_argument("input", help="the file to read, or - for standard input (optionally gzipped)")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help='json: {"name": [[ts, value], ...]}; graphite-json / graphite-csv: Graphite render'
                             " format=json / format=csv; csv: timestamp,value lines (default: from the content)")
    parser.add_argument("--name", default=None, help="the series name of a plain CSV (default: the file name)")
    parser.add_argument("--tz", type=_zone, default=UTC, metavar="ZONE",
                        help="time zone of CSV times without an offset, e.g. Graphite's TIME_ZONE (default: UTC)")
    parser.add_argument("--now", type=_epoch, default=None, help="the current epoch time (default: wall clock)")
    parser.add_argument("--all-algorithms", action="store_true", help="run every algorithm (no early exit)")
    parser.add_argument("--output", type=Path, default=None,
                        help="write the JSON here instead of stdout (replaced only when the whole input is read)")
    parser.add_argument("--reference", action="store_true",
                        help="use the per-series reference engine (the oracle) instead of ANALYZER_ENGINE")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar on stderr (default: when stderr is a terminal and the input is large)")
    limits = parser.add_argument_group("bounds on the input and on memory")
    limits.add_argument("--max-points", type=_positive, default=MAX_POINTS, help="datapoints of one series")
    limits.add_argument("--max-name", type=_positive, default=MAX_NAME, help="characters of a series name")
    limits.add_argument("--max-series", type=_positive, default=MAX_SERIES, help="series in the input")
    limits.add_argument("--chunk-series", type=_positive, default=CHUNK_SERIES, help="series analysed together")
    limits.add_argument("--chunk-points", type=_positive, default=CHUNK_POINTS,
                        help="datapoints analysed together")
    parser.set_defaults(handler=run)


def _entries(series: list[Series], names: list[str], settings: config.Settings,
             now: float) -> Iterator[tuple[str, dict[str, Any]]]:
    algorithms = list(settings.ALGORITHMS)
    for outcome in engine.analyse(series, names, settings, now):
        yield outcome.name, result(outcome, algorithms)


def check_series(series: dict[str, Series], settings: config.Settings, now: float) -> dict[str, dict[str, Any]]:
    """The output entry of every series, in memory (for callers that hold the series already)."""
    return dict(_entries(list(series.values()), list(series), settings, now))


def check_stream(
    series: Iterable[tuple[str, Series]], settings: config.Settings, now: float, write: Callable[[str, dict], None],
    *, chunk_series: int = CHUNK_SERIES, chunk_points: int = CHUNK_POINTS, tick: Callable[[int], None] | None = None,
) -> None:
    """Analyse ``series`` in chunks of at most ``chunk_series`` series and ``chunk_points`` datapoints
    (one longer series is a chunk of its own), calling ``write(name, entry)`` in input order.

    ``tick(n)`` is called after each chunk with the number of series analysed so far.
    """
    names: list[str] = []
    chunk: list[Series] = []
    points = 0
    done = 0
    for name, one in series:
        if chunk and (len(chunk) >= chunk_series or points + len(one) > chunk_points):
            for entry in _entries(chunk, names, settings, now):
                write(*entry)
            done += len(chunk)
            names, chunk, points = [], [], 0
            if tick is not None:
                tick(done)
        names.append(name)
        chunk.append(one)
        points += len(one)
    if chunk:
        for entry in _entries(chunk, names, settings, now):
            write(*entry)
        if tick is not None:
            tick(done + len(chunk))


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside ``path`` renamed to it only when the body completes."""
    if path is None:
        yield sys.stdout
        return
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed below, not closed by a with)
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def _settings(args: argparse.Namespace) -> config.Settings:
    settings = config.load()
    if settings.ENABLE_SECOND_ORDER:
        # The second-order test reads and writes the daemon's trigger history; an ad-hoc check must not.
        print("note :: ENABLE_SECOND_ORDER is not applied by check (it needs the daemon's trigger history)",
              file=sys.stderr)
        settings = settings.replace(ENABLE_SECOND_ORDER=False)
    if args.all_algorithms:
        settings = settings.replace(RUN_OPTIMIZED_WORKFLOW=False)
    if args.reference:
        settings = settings.replace(ANALYZER_ENGINE="reference")
    return settings


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    options = ReadOptions(format=args.format, name=args.name, zone=args.tz,
                          limits=Limits(args.max_points, args.max_name, args.max_series))
    now = time.time() if args.now is None else args.now
    tune_allocator()
    summary = Summary()
    try:
        source = open_source(args.input)
    except OSError as exc:
        print(f"error :: cannot read the input: {exc}", file=sys.stderr)
        return 2
    progress = Progress.for_stream(source, args.progress)
    try:
        with progress, _output(args.output) as out:
            writer = ResultWriter(out)

            def write(name: str, entry: dict[str, Any]) -> None:
                writer.write(name, entry)
                summary.add(name, entry)

            check_stream(read_series(source, options), settings, now, write, chunk_series=args.chunk_series,
                         chunk_points=args.chunk_points, tick=progress.update)
            writer.close()
    except SeriesFormatError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Python would report the closed stdout again when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("error :: the output was closed before the end", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 2
    finally:
        source.close()
    print(summary.render(), file=sys.stderr)
    return 0
