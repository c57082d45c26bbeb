"""Streaming readers of the two JSON inputs of ``check``, one series at a time.

* the JSON object of series, ``{"name": [[timestamp, value], ...], ...}``;
* Graphite's render ``format=json``, ``[{"target": "name", "datapoints": [[value, timestamp], ...]}, ...]``
  (other keys of an element, such as ``tags``, are ignored; null values are skipped).

The document is never held whole: the structure around the series (braces, commas, names) is walked
here, and each series' array (or Graphite element) is decoded by the standard library's C decoder from a
buffer that holds little more than that one element. An element longer than its limit, a name longer than
its limit, nesting too deep for the decoder or any syntax error stops the read with the line and column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from skyline_analyzer import excerpt
from skyline_analyzer.cli.datapoints import quote_name, series_from_pairs
from skyline_analyzer.cli.series_input import Source
from skyline_analyzer.cli.series_limits import Limits, NameRegister
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError

#: Characters read from the input at a time.
CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"


class _Scanner:
    """A window on the decoded text with the line and column of its first character."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.buffer = ""
        self.pos = 0
        self.eof = False
        # Line and column of buffer[_mark]: positions are counted from there on, never from the start.
        self._mark = 0
        self._line = 1
        self._column = 1
        self._decoder = json.JSONDecoder()

    def _fill(self, at_least: int = CHUNK) -> None:
        """Drop what was consumed and read at least ``at_least`` more characters (or to the end)."""
        self._advance_mark(self.pos)
        self._mark = 0
        pieces = [self.buffer[self.pos :]]
        wanted = at_least
        while wanted > 0:
            text = self.source.read(max(wanted, CHUNK))
            if not text:
                self.eof = True
                break
            pieces.append(text)
            wanted -= len(text)
        self.buffer = "".join(pieces)
        self.pos = 0

    def _advance_mark(self, pos: int) -> None:
        newlines = self.buffer.count("\n", self._mark, pos)
        if newlines:
            self._line += newlines
            self._column = pos - self.buffer.rfind("\n", self._mark, pos)
        else:
            self._column += pos - self._mark
        self._mark = pos

    def where(self, pos: int | None = None) -> str:
        """``line L column C`` of buffer position ``pos`` (default: the current one), at or after the mark.

        Positions asked for only move forward (an element's start, then an error inside it), so the count
        of lines costs one pass over the input.
        """
        pos = self.pos if pos is None else pos
        self._advance_mark(max(pos, self._mark))
        return f"line {self._line} column {self._column - (self._mark - pos)}"

    def error(self, what: str, pos: int | None = None) -> SeriesFormatError:
        return SeriesFormatError(f"{self.source.label}: {self.where(pos)}: {what}")

    def peek(self) -> str:
        """The next character that is not whitespace (not consumed), or ``""`` at the end of the input."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if self.eof:
                return ""
            self._fill()

    def expect(self, allowed: str, what: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            found = "the end of the input" if not char else excerpt.describe(char)
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1
        return char

    def value(self, limit: int, what: str) -> tuple[Any, str]:
        """The JSON value starting at the next character, at most ``limit`` characters, and where it started.

        A value cut by the end of the buffer fails to decode: more is read (at least doubling what is
        buffered, so re-decoding costs no more than twice the element) until it decodes, the input ends
        or the element is over its limit.
        """
        self.peek()
        while True:
            start = self.pos
            try:
                value, end = self._decoder.raw_decode(self.buffer, start)
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buffer) - start > limit:
                    if len(self.buffer) - start > limit:
                        raise self.error(f"{what} is longer than {limit} characters (--max-points)") from None
                    raise self.error(f"bad JSON in {what}: {exc.msg}", exc.pos) from None
                self._fill(max(CHUNK, len(self.buffer) - start))
                continue
            except RecursionError:
                raise self.error(f"{what} is nested too deeply") from None
            except ValueError as exc:  # an integer with too many digits
                raise self.error(f"bad number in {what}: {excerpt.escape(str(exc))}") from None
            if end - start > limit:
                raise self.error(f"{what} is longer than {limit} characters (--max-points)", start)
            where = self.where(start)
            self.pos = end
            return value, where

    def end(self) -> None:
        if self.peek():
            raise self.error("unexpected data after the end of the JSON document")


def read_object(source: Source, limits: Limits) -> Iterator[tuple[str, Series]]:
    """Every series of a JSON object of series, in file order."""
    scanner = _Scanner(source)
    names = NameRegister(limits)
    scanner.expect("{", "a JSON object of series")
    if scanner.peek() == "}":
        scanner.pos += 1
    else:
        while True:
            if scanner.peek() != '"':
                scanner.expect('"', "a series name in double quotes")
            name, where = scanner.value(limits.name_chars, "a series name")
            names.add(name, f"{source.label}: {where}")
            scanner.expect(":", "':' after a series name")
            pairs, where = scanner.value(limits.element_chars, f"series {quote_name(name)}")
            yield name, _series(source, where, name, pairs, graphite=False, limits=limits)
            if scanner.expect(",}", "',' or '}' after a series") == "}":
                break
    scanner.end()


def read_graphite(source: Source, limits: Limits) -> Iterator[tuple[str, Series]]:
    """Every series of a Graphite render ``format=json`` document, in file order."""
    scanner = _Scanner(source)
    names = NameRegister(limits)
    scanner.expect("[", "a JSON array of Graphite series")
    if scanner.peek() == "]":
        scanner.pos += 1
    else:
        index = 0
        while True:
            element, where = scanner.value(limits.element_chars, f"Graphite series {index}")
            name, pairs = _graphite_element(source, where, index, element)
            names.add(name, f"{source.label}: {where}")
            yield name, _series(source, where, name, pairs, graphite=True, limits=limits)
            index += 1
            if scanner.expect(",]", "',' or ']' after a Graphite series") == "]":
                break
    scanner.end()


def _graphite_element(source: Source, where: str, index: int, element: object) -> tuple[str, object]:
    if not isinstance(element, dict) or "target" not in element or "datapoints" not in element:
        raise SeriesFormatError(f"{source.label}: {where}: Graphite series {index}: expected an object with"
                                f' "target" and "datapoints", got {excerpt.describe(element)}')
    name = element["target"]
    if not isinstance(name, str):
        raise SeriesFormatError(f"{source.label}: {where}: Graphite series {index}: the target is not a string: "
                                f"{excerpt.describe(name)}")
    return name, element["datapoints"]


def _series(source: Source, where: str, name: str, pairs: object, *, graphite: bool, limits: Limits) -> Series:
    try:
        return series_from_pairs(name, pairs, graphite=graphite, max_points=limits.max_points)
    except SeriesFormatError as exc:
        raise SeriesFormatError(f"{source.label}: {where}: {exc}") from None
