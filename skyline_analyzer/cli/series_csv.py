"""Streaming readers of the two CSV inputs of ``check``.

* plain CSV, ``timestamp,value`` lines: one series, named by ``--name`` or after the file;
* Graphite's render ``format=csv``, ``name,YYYY-mm-dd HH:MM:SS,value`` lines: consecutive lines of one
  name are one series, and an empty value (or ``nan``, which Graphite's JSON renders as null) is a
  missing point, skipped.

A timestamp is epoch seconds or an ISO 8601 time (:mod:`skyline_analyzer.cli.csv_time`). The first
non-blank line is a header only when it has the format's number of fields and its timestamp field holds
no digit; anything else that cannot be read is an error naming the line. The input is read in blocks of
lines, each line bounded (``--max-name`` sets the bound); a block of well-formed lines is converted at
once (:mod:`skyline_analyzer.cli.csv_block`), any other block line by line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Generator, Iterator
from datetime import tzinfo

import numpy as np

from skyline_analyzer import excerpt
from skyline_analyzer.cli import csv_block
from skyline_analyzer.cli.csv_time import Readings, TimeParser, parse_number
from skyline_analyzer.cli.datapoints import quote_name
from skyline_analyzer.cli.series_input import Source
from skyline_analyzer.cli.series_limits import Limits, NameRegister
from skyline_analyzer.detection.series import Number, Series
from skyline_analyzer.exceptions import SeriesFormatError

#: Characters read at a time; a block is the whole lines among them.
CHUNK = 1 << 20
#: Characters of a field or line quoted in a message.
QUOTE = 60
_DIGIT = re.compile(r"\d")


def _blocks(source: Source, limit: int) -> Iterator[tuple[int, list[str], str]]:
    """``(number of the first line, lines without their newline, the lines as one text)``."""
    carry = ""
    number = 1
    while True:
        text = source.read(CHUNK)
        if not text:
            if carry:
                yield number, [carry], carry
            return
        text = carry + text
        cut = text.rfind("\n")
        lines = text[:cut].split("\n") if cut >= 0 else []
        carry = text[cut + 1 :]
        longest = max(map(len, lines), default=0)
        if longest > limit:
            index = next(i for i, line in enumerate(lines) if len(line) > limit)
            raise _too_long(source, number + index, limit)
        if len(carry) > limit:
            raise _too_long(source, number + len(lines), limit)
        if lines:
            yield number, lines, text[:cut]
            number += len(lines)


def _too_long(source: Source, number: int, limit: int) -> SeriesFormatError:
    return SeriesFormatError(f"{source.label}: line {number}: longer than {limit} characters"
                             " (--max-name sets the bound)")


class _SeriesBuilder:
    """The datapoints of one series as they are read, checked for increasing time and their number."""

    def __init__(self, name: str, label: str, max_points: int) -> None:
        self.name = name
        self._label = label
        self._max_points = max_points
        self._pieces: list[tuple[np.ndarray, np.ndarray]] = []
        self._timestamps: list[Number] = []
        self._values: list[Number] = []
        self._count = 0
        self._last: tuple[Number, Number] | None = None

    def _error(self, number: int, what: str) -> SeriesFormatError:
        return SeriesFormatError(f"{self._label}: line {number}: {quote_name(self.name)}: {what}")

    def _check_count(self, number: int, more: int) -> None:
        if self._count + more > self._max_points:
            raise self._error(number, f"more than {self._max_points} datapoints (--max-points)")

    def _order_error(self, number: int, timestamp: float, previous: float) -> SeriesFormatError:
        kind = "duplicate" if timestamp == previous else "out-of-order"
        return self._error(number, f"{kind} timestamp {timestamp:.17g} (previous {previous:.17g})")

    def add(self, number: int, readings: Readings, value: Number) -> None:
        """One datapoint read from line ``number``."""
        timestamp = readings[0]
        if self._last is not None:
            previous = self._last[0]
            if timestamp <= previous < readings[1]:
                timestamp = readings[1]
            if timestamp <= previous:
                raise self._order_error(number, timestamp, previous)
        self._check_count(number, 1)
        self._timestamps.append(timestamp)
        self._values.append(value)
        self._count += 1
        self._last = (timestamp, value)

    def extend(self, first: int, block: csv_block.Block, segment: csv_block.Segment) -> None:
        """The datapoints of ``segment``, whose first line is line ``first``; missing values are skipped."""
        timestamps = block.timestamps[segment.start : segment.stop]
        values = block.values[segment.start : segment.stop]
        rows = np.flatnonzero(~np.isnan(values))
        if rows.size == 0:
            return
        if rows.size < values.size:
            timestamps, values = timestamps[rows], values[rows]
        before = self._last[0] if self._last is not None else -math.inf
        steps = np.diff(timestamps, prepend=before)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            row = int(bad[0])
            previous = timestamps[row - 1] if row else before
            raise self._order_error(first + int(rows[row]), float(timestamps[row]), float(previous))
        if self._count + rows.size > self._max_points:
            self._check_count(first + int(rows[self._max_points - self._count]), rows.size)
        self._flush()
        self._pieces.append((timestamps, values))
        self._count += rows.size
        # The value was screened as a decimal number: parse_number reads it, an int staying an int.
        last_value = parse_number(block.value_texts[segment.start + int(rows[-1])].strip())
        self._last = (float(timestamps[-1]), last_value if last_value is not None else float(values[-1]))

    def _flush(self) -> None:
        if self._timestamps:
            self._pieces.append((np.array(self._timestamps, dtype=np.float64),
                                 np.array(self._values, dtype=np.float64)))
            self._timestamps, self._values = [], []

    def series(self) -> Series:
        if self._last is None:
            return Series.empty()
        self._flush()
        timestamps = np.concatenate([piece[0] for piece in self._pieces])
        values = np.concatenate([piece[1] for piece in self._pieces])
        return Series(timestamps, values, self._last[0], self._last[1])


class _Reader:
    """Either CSV format: ``name`` is the plain CSV's series name, None for Graphite's format."""

    def __init__(self, source: Source, limits: Limits, zone: tzinfo, name: str | None) -> None:
        self._source = source
        self._limits = limits
        self._clock = TimeParser(zone)
        self._name = name
        self._fields = 2 if name is not None else 3
        self._names = NameRegister(limits)
        self._builder: _SeriesBuilder | None = None
        self._first = True

    def series(self) -> Iterator[tuple[str, Series]]:
        for number, lines, text in _blocks(self._source, self._limits.line_chars):
            block = None if self._first or '"' in text else csv_block.convert(text, len(lines), self._name,
                                                                                self._clock)
            if block is None:
                for offset, line in enumerate(lines):
                    yield from self._line(number + offset, line)
                continue
            for segment in block.segments:
                builder = yield from self._switch(segment.name, number + segment.start)
                builder.extend(number + segment.start, block, segment)
        if self._builder is not None:
            yield self._builder.name, self._builder.series()
        elif self._name is not None:
            yield self._name, Series.empty()

    def _error(self, number: int, what: str) -> SeriesFormatError:
        return SeriesFormatError(f"{self._source.label}: line {number}: {what}")

    def _switch(self, name: str, number: int) -> Generator[tuple[str, Series], None, _SeriesBuilder]:
        """The builder of series ``name`` met at line ``number``: the current one, or a new one (after
        yielding the current one's series)."""
        if self._builder is not None:
            if name == self._builder.name:
                return self._builder
            yield self._builder.name, self._builder.series()
        self._names.add(name, f"{self._source.label}: line {number}")
        self._builder = _SeriesBuilder(name, self._source.label, self._limits.max_points)
        return self._builder

    def _line(self, number: int, line: str) -> Iterator[tuple[str, Series]]:
        if not line.strip():
            return
        fields = self._split(number, line)
        time_field = self._fields - 2
        if self._first:
            self._first = False
            if len(fields) == self._fields and not _DIGIT.search(fields[time_field]):
                return
        if len(fields) != self._fields:
            layout = "timestamp,value" if self._name is not None else "name,time,value"
            raise self._error(number, f"expected {self._fields} fields, {layout}; got {len(fields)}")
        builder = yield from self._switch(self._name if self._name is not None else fields[0], number)
        readings = self._time(number, fields[time_field])
        value_text = fields[time_field + 1].strip()
        if self._name is None and (not value_text or value_text.lower() == "nan"):
            return
        builder.add(number, readings, self._value(number, value_text))

    def _split(self, number: int, line: str) -> list[str]:
        if '"' not in line:
            return line.split(",")
        try:
            return next(csv.reader((line,), strict=True))
        except csv.Error as exc:
            raise self._error(number, f"bad CSV quoting ({exc}): {excerpt.describe(line, QUOTE)}") from None

    def _time(self, number: int, text: str) -> Readings:
        readings = self._clock(text.strip())
        if readings is None:
            raise self._error(number, "the timestamp is neither epoch seconds nor an ISO 8601 time: "
                                      f"{excerpt.describe(text, QUOTE)}")
        if not all(math.isfinite(reading) for reading in readings):
            raise self._error(number, f"non-finite timestamp {excerpt.describe(text, QUOTE)}")
        return readings

    def _value(self, number: int, text: str) -> Number:
        value = parse_number(text)
        if value is None:
            raise self._error(number, f"non-numeric value {excerpt.describe(text, QUOTE)}")
        if not math.isfinite(value):
            raise self._error(number, f"non-finite value {excerpt.describe(text, QUOTE)}")
        return value


def read_plain(source: Source, limits: Limits, name: str, zone: tzinfo) -> Iterator[tuple[str, Series]]:
    """The one series of a ``timestamp,value`` CSV, named ``name``."""
    return _Reader(source, limits, zone, name).series()


def read_graphite(source: Source, limits: Limits, zone: tzinfo) -> Iterator[tuple[str, Series]]:
    """Every series of a Graphite render ``format=csv`` export, in file order."""
    return _Reader(source, limits, zone, None).series()
