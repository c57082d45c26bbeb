"""Streaming readers of the two CSV inputs of ``check``, one line at a time.

* plain CSV, ``timestamp,value`` lines: one series, named by ``--name`` or after the file;
* Graphite's render ``format=csv``, ``name,YYYY-mm-dd HH:MM:SS,value`` lines: consecutive lines of one
  name are one series, and an empty value (or ``nan``, which Graphite's JSON renders as null) is a
  missing point, skipped.

A timestamp is a number (epoch seconds) or an ISO 8601 time; a time without an offset is in ``--tz``
(Graphite writes its ``TIME_ZONE``, or the render ``tz`` parameter). When a local time repeats at the
end of summer time, the second occurrence is taken as the later instant, so a Graphite export across the
change reads in order. The first line is a header only when its timestamp field holds no digit;
anything else that cannot be read is an error naming the line. Lines are bounded (``--max-name`` sets
the bound), and so are the datapoints of a series.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from datetime import datetime, tzinfo

import numpy as np

from skyline_analyzer import excerpt
from skyline_analyzer.cli.datapoints import quote_name
from skyline_analyzer.cli.series_input import Source
from skyline_analyzer.cli.series_limits import Limits, NameRegister
from skyline_analyzer.detection.series import Number, Series
from skyline_analyzer.exceptions import SeriesFormatError

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DIGIT = re.compile(r"\d")
#: Distinct time strings remembered (a Graphite export repeats the same times for every series).
TIME_CACHE = 1 << 16
#: Characters of a field or line quoted in a message.
QUOTE = 60


def parse_number(text: str) -> Number | None:
    """An int or float from a decimal number, None when ``text`` is not one (no ``nan``, ``inf`` or ``_``)."""
    if not _NUMBER.fullmatch(text):
        return None
    return int(text) if _INTEGER.fullmatch(text) else float(text)


class TimeParser:
    """Timestamps from epoch numbers or ISO 8601 times, as ``(first, second)`` readings of the time.

    The two readings differ only for a local time that occurs twice (``fold`` 0 and 1).
    """

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._cache: dict[str, tuple[Number, Number]] = {}

    def __call__(self, text: str) -> tuple[Number, Number] | None:
        number = parse_number(text)
        if number is not None:
            return number, number
        readings = self._cache.get(text)
        if readings is None:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            if moment.tzinfo is None:
                readings = (_epoch(moment.replace(tzinfo=self._zone)),
                            _epoch(moment.replace(tzinfo=self._zone, fold=1)))
            else:
                readings = (_epoch(moment), _epoch(moment))
            if len(self._cache) >= TIME_CACHE:
                self._cache.clear()
            self._cache[text] = readings
        return readings


def _epoch(moment: datetime) -> Number:
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


class _Lines:
    """The non-blank lines of a CSV input as ``(line number, fields)``, each line bounded."""

    def __init__(self, source: Source, limits: Limits) -> None:
        self._source = source
        self._limit = limits.line_chars
        self.number = 0

    def error(self, what: str) -> SeriesFormatError:
        return SeriesFormatError(f"{self._source.label}: line {self.number}: {what}")

    def __iter__(self) -> Iterator[list[str]]:
        while True:
            line = self._source.readline(self._limit)
            if not line:
                return
            self.number += 1
            if len(line) >= self._limit and not line.endswith("\n"):
                raise self.error(f"longer than {self._limit} characters (--max-name sets the bound)")
            text = line.rstrip("\n")
            if not text.strip():
                continue
            if '"' not in text:
                yield text.split(",")
                continue
            try:
                yield next(csv.reader((text,), strict=True))
            except csv.Error as exc:
                raise self.error(f"bad CSV quoting ({exc}): {excerpt.describe(text, QUOTE)}") from None


class _SeriesBuilder:
    """The datapoints of one series as they are read, checked for increasing time."""

    def __init__(self, name: str, lines: _Lines, max_points: int) -> None:
        self.name = name
        self._lines = lines
        self._max_points = max_points
        self._timestamps: list[Number] = []
        self._values: list[Number] = []

    def add(self, readings: tuple[Number, Number], value: Number) -> None:
        timestamp = readings[0]
        if self._timestamps:
            previous = self._timestamps[-1]
            if timestamp <= previous < readings[1]:
                timestamp = readings[1]
            if timestamp <= previous:
                kind = "duplicate" if timestamp == previous else "out-of-order"
                raise self._lines.error(f"{quote_name(self.name)}: {kind} timestamp {timestamp} (previous {previous})")
        if len(self._timestamps) >= self._max_points:
            raise self._lines.error(f"{quote_name(self.name)}: more than {self._max_points} datapoints (--max-points)")
        self._timestamps.append(timestamp)
        self._values.append(value)

    def series(self) -> Series:
        if not self._timestamps:
            return Series.empty()
        return Series(np.array(self._timestamps, dtype=np.float64), np.array(self._values, dtype=np.float64),
                      self._timestamps[-1], self._values[-1])


def _is_header(fields: list[str], count: int, time_field: int) -> bool:
    return len(fields) == count and not _DIGIT.search(fields[time_field])


def _time(lines: _Lines, clock: TimeParser, text: str) -> tuple[Number, Number]:
    readings = clock(text.strip())
    if readings is None:
        raise lines.error(f"the timestamp is neither epoch seconds nor an ISO 8601 time: "
                          f"{excerpt.describe(text, QUOTE)}")
    if not all(math.isfinite(reading) for reading in readings):
        raise lines.error(f"non-finite timestamp {excerpt.describe(text, QUOTE)}")
    return readings


def _value(lines: _Lines, text: str) -> Number:
    value = parse_number(text.strip())
    if value is None:
        raise lines.error(f"non-numeric value {excerpt.describe(text, QUOTE)}")
    if not math.isfinite(value):
        raise lines.error(f"non-finite value {excerpt.describe(text, QUOTE)}")
    return value


def read_plain(source: Source, limits: Limits, name: str, zone: tzinfo) -> Iterator[tuple[str, Series]]:
    """The one series of a ``timestamp,value`` CSV, named ``name``."""
    lines = _Lines(source, limits)
    clock = TimeParser(zone)
    builder = _SeriesBuilder(name, lines, limits.max_points)
    first = True
    for fields in lines:
        if first:
            first = False
            if _is_header(fields, 2, 0):
                continue
        if len(fields) != 2:
            raise lines.error(f"expected 2 fields, timestamp,value; got {len(fields)}")
        builder.add(_time(lines, clock, fields[0]), _value(lines, fields[1]))
    yield name, builder.series()


def read_graphite(source: Source, limits: Limits, zone: tzinfo) -> Iterator[tuple[str, Series]]:
    """Every series of a Graphite render ``format=csv`` export, in file order."""
    lines = _Lines(source, limits)
    clock = TimeParser(zone)
    names = NameRegister(limits)
    builder: _SeriesBuilder | None = None
    first = True
    for fields in lines:
        if first:
            first = False
            if _is_header(fields, 3, 1):
                continue
        if len(fields) != 3:
            raise lines.error(f"expected 3 fields, name,time,value; got {len(fields)}")
        name, time_text, value_text = fields
        if builder is None or name != builder.name:
            if builder is not None:
                yield builder.name, builder.series()
            names.add(name, f"{source.label}: line {lines.number}")
            builder = _SeriesBuilder(name, lines, limits.max_points)
        readings = _time(lines, clock, time_text)
        value_text = value_text.strip()
        if not value_text or value_text.lower() == "nan":
            continue
        builder.add(readings, _value(lines, value_text))
    if builder is not None:
        yield builder.name, builder.series()
