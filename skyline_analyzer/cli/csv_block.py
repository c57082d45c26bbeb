"""A block of well-formed CSV lines converted at once: the fast path of the CSV readers.

A block qualifies when no line is quoted or blank, every line has the format's number of fields, every
value is a decimal number (or, in Graphite's format, empty: a missing point) and every time reads one
way only. The block is split into one flat list of fields (no list per line, which would cost an
allocation and garbage-collector work per line), each column is screened for stray characters and
converted by numpy, which reads a decimal string to the same float64 as ``float()``. Anything else
returns None, and the reader goes through the block line by line, which finds and names the bad line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from skyline_analyzer.cli.csv_time import TimeParser

#: A character that no decimal number (with blank space and a line's leading newline) holds.
_NOT_NUMERIC = re.compile(r"[^0-9eE.+\- \n]")


@dataclass(frozen=True)
class Segment:
    """Consecutive lines of one series in a block: rows ``start`` to ``stop`` of the block's columns."""

    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class Block:
    """The converted columns of a block; a missing value is NaN in ``values`` (only Graphite's format)."""

    segments: list[Segment]
    timestamps: np.ndarray
    values: np.ndarray
    value_texts: list[str]


def convert(text: str, lines: int, name: str | None, clock: TimeParser) -> Block | None:
    """The block of ``lines`` lines in ``text`` (``name,time,value`` when ``name`` is None, else
    ``timestamp,value``), or None when a line needs reading on its own."""
    count = 2 if name is not None else 3
    # Each line's first field keeps the newline before it: there must be exactly one such field per line,
    # at every count-th place, which proves that every line has exactly ``count`` fields.
    fields = ("\n" + text).replace("\n", ",\n").split(",")
    del fields[0]
    if len(fields) != count * lines or "".join(fields[0::count]).count("\n") != lines:
        return None
    value_texts = fields[count - 1 :: count]
    if name is None and "" in value_texts:
        values = _numbers([value or "nan" for value in value_texts], missing=True)
    else:
        values = _numbers(value_texts, missing=False)
    timestamps = _timestamps(fields[count - 2 :: count], clock)
    if values is None or timestamps is None:
        return None
    if name is not None:
        segments = [Segment(name, 0, lines)]
    else:
        segments = []
        start = 0
        for series, group in groupby(fields[0::count]):
            stop = start + len(list(group))
            segments.append(Segment(series[1:], start, stop))
            start = stop
    return Block(segments, timestamps, values, value_texts)


def _numbers(texts: list[str], *, missing: bool) -> np.ndarray | None:
    """The numbers in ``texts`` (``nan`` for a missing value when ``missing``), None if one is not a finite
    decimal number."""
    if _NOT_NUMERIC.search("".join(texts).replace("nan", "") if missing else "".join(texts)):
        return None
    try:
        numbers = np.array(texts, dtype=np.float64)
    except ValueError:
        return None
    return None if np.isinf(numbers).any() else numbers


def _timestamps(times: list[str], clock: TimeParser) -> np.ndarray | None:
    if not _NOT_NUMERIC.search("".join(times)):
        try:
            timestamps = np.array(times, dtype=np.float64)
        except ValueError:  # an ISO date, such as 2024-01-31
            pass
        else:
            return None if np.isinf(timestamps).any() else timestamps
    epochs = clock.unambiguous(times)
    return None if epochs is None else np.array(epochs, dtype=np.float64)
