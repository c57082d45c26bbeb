"""The series of an input file for ad-hoc analysis, one at a time, in any of the formats ``check`` reads.

Formats (docs/check.md has examples):

* ``json``: ``{"name": [[timestamp, value], ...], ...}``;
* ``graphite-json``: Graphite's render ``format=json``, null values skipped;
* ``csv``: ``timestamp,value`` lines of one series, an optional header;
* ``graphite-csv``: Graphite's render ``format=csv``, ``name,time,value`` lines, empty values skipped.

Any of them may be gzipped. ``auto`` tells them apart from the content: ``{`` starts a JSON object, ``[``
a Graphite JSON document, and otherwise the first non-blank line is CSV with three fields for Graphite's,
two for the plain one. Every malformed input raises :class:`SeriesFormatError` naming the input and the
line (and for JSON the series and the datapoint's position); the readers are in ``series_json`` and
``series_csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path

from skyline_analyzer.cli import series_csv, series_json
from skyline_analyzer.cli.series_input import STDIN_LABEL, Source, open_source
from skyline_analyzer.cli.series_limits import Limits
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError

FORMATS = ("auto", "json", "graphite-json", "csv", "graphite-csv")
#: Name of a plain CSV series read from standard input.
STDIN_NAME = "stdin"
#: Characters looked at to tell the format (leading blank space beyond this is refused).
DETECT_CHARS = 1 << 20
_DETECT_PIECE = 1 << 16


@dataclass(frozen=True)
class ReadOptions:
    """How to read an input: its format (or ``auto``), bounds, a plain CSV's series name, the local time zone."""

    format: str = "auto"
    limits: Limits = field(default_factory=Limits)
    name: str | None = None
    zone: tzinfo = UTC


def detect_format(source: Source, limits: Limits) -> str | None:
    """The format of ``source`` from its first characters (which are put back), None when it is empty."""
    text = ""
    while True:
        piece = source.read(_DETECT_PIECE)
        text += piece
        start = len(text) - len(text.lstrip())
        if not piece or (start < len(text) and (text[start] in "{[" or "\n" in text[start:])):
            break
        if len(text) > DETECT_CHARS + limits.line_chars:
            break
    source.unread(text)
    stripped = text.lstrip()
    if not stripped:
        if len(text) > DETECT_CHARS:
            raise SeriesFormatError(f"{source.label}: nothing but blank space in the first {len(text)} characters")
        return None
    if stripped[0] == "{":
        return "json"
    if stripped[0] == "[":
        return "graphite-json"
    line = stripped.split("\n", 1)[0][: limits.line_chars]
    try:
        fields = next(csv.reader((line,)))
    except csv.Error:
        fields = line.split(",")
    return "graphite-csv" if len(fields) == 3 else "csv"


def plain_csv_name(label: str) -> str:
    """The default name of a plain CSV series: the file name up to its first dot, ``stdin`` for ``-``."""
    return STDIN_NAME if label == STDIN_LABEL else Path(label).name.split(".")[0]


def read_series(source: Source, options: ReadOptions) -> Iterator[tuple[str, Series]]:
    """Every series of ``source``, validated, in input order."""
    kind = detect_format(source, options.limits) if options.format == "auto" else options.format
    if kind is None:
        return iter(())
    if kind == "json":
        return series_json.read_object(source, options.limits)
    if kind == "graphite-json":
        return series_json.read_graphite(source, options.limits)
    if kind == "graphite-csv":
        return series_csv.read_graphite(source, options.limits, options.zone)
    if kind == "csv":
        name = options.name if options.name is not None else plain_csv_name(source.label)
        return series_csv.read_plain(source, options.limits, name, options.zone)
    raise ValueError(f"unknown format {kind!r}; one of {', '.join(FORMATS)}")


def read_series_file(path: Path | str, options: ReadOptions | None = None) -> dict[str, Series]:
    """Every series of the file at ``path`` by name, all in memory (for tests and benchmarks)."""
    source = open_source(str(path))
    try:
        return dict(read_series(source, options or ReadOptions()))
    finally:
        source.close()
