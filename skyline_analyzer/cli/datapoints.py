"""One decoded JSON array of datapoints to a :class:`Series`, validated, every error naming its position.

Two layouts: ``[[timestamp, value], ...]`` (the JSON object of series) and Graphite's
``[[value, timestamp], ...]`` where a ``null`` value is a missing point, skipped (Graphite renders gaps,
and its NaN, as ``null``). Anything else is refused, naming the series and the 0-based position in the
array: not a pair, a non-numeric (or boolean) or non-finite number, a timestamp that does not increase.

The common case, an array of numeric pairs, is converted by numpy in one call; only when that fails or
finds a non-finite number is the array walked element by element, to find and name the first bad one.
Both paths give the same float64 arrays as :meth:`Series.from_pairs`.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np

from skyline_analyzer import excerpt
from skyline_analyzer.detection.series import Series, is_number
from skyline_analyzer.exceptions import SeriesFormatError

#: Characters of a series name quoted in a message.
NAME_QUOTE = 120
_NUMBERS = frozenset({int, float})
_NUMBERS_OR_NULL = frozenset({int, float, type(None)})


def quote_name(name: str) -> str:
    """A series name as messages show it: escaped and bounded."""
    return excerpt.escape(name, NAME_QUOTE)


def series_from_pairs(name: str, pairs: Any, *, graphite: bool, max_points: int) -> Series:
    """The series in ``pairs`` (``graphite``: ``[value, timestamp]`` with null values skipped)."""
    layout = "[value, timestamp]" if graphite else "[timestamp, value]"
    if not isinstance(pairs, list):
        raise SeriesFormatError(f"{quote_name(name)}: expected a list of {layout} pairs, got {type(pairs).__name__}")
    if len(pairs) > max_points:
        raise SeriesFormatError(f"{quote_name(name)}: {len(pairs)} datapoints, more than the limit of {max_points}"
                                " (--max-points)")
    if not pairs:
        return Series.empty()
    columns = (1, 0) if graphite else (0, 1)
    kept = _fast(pairs, columns, graphite)
    if kept is None:
        kept = _walk(name, pairs, columns, graphite, layout)
    timestamps, values, positions = kept
    if timestamps.shape[0] == 0:
        return Series.empty()
    _check_increasing(name, timestamps, positions)
    last = pairs[int(positions[-1])] if positions is not None else pairs[-1]
    return Series(timestamps, values, last[columns[0]], last[columns[1]])


Kept = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _fast(pairs: list, columns: tuple[int, int], graphite: bool) -> Kept | None:
    """The arrays by one numpy conversion, or None when the array needs the element-by-element walk.

    The third element maps kept rows to their positions in ``pairs`` (None when every row is kept).
    """
    try:
        kinds = set(map(type, chain.from_iterable(pairs)))
        array = np.array(pairs, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if array.shape != (len(pairs), 2) or not kinds <= (_NUMBERS_OR_NULL if graphite else _NUMBERS):
        return None
    timestamps = np.ascontiguousarray(array[:, columns[0]])
    values = np.ascontiguousarray(array[:, columns[1]])
    finite = np.isfinite(values)
    if finite.all():
        return (timestamps, values, None) if np.isfinite(timestamps).all() else None
    if type(None) not in kinds:
        return None
    missing = np.flatnonzero(~finite)
    # numpy turns a null into NaN, but a NaN in the input is an error, not a gap.
    if not np.isfinite(timestamps).all() or any(pairs[i][columns[1]] is not None for i in missing):
        return None
    positions = np.flatnonzero(finite)
    return timestamps[positions], values[positions], positions


def _walk(name: str, pairs: list, columns: tuple[int, int], graphite: bool, layout: str) -> Kept:
    """The arrays element by element, raising at the first datapoint that cannot be analysed."""
    positions = []
    for position, pair in enumerate(pairs):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise SeriesFormatError(
                f"{quote_name(name)}: datapoint {position} is not a {layout} pair: {excerpt.describe(pair)}")
        if graphite and pair[columns[1]] is None:
            continue
        for label, column in (("timestamp", columns[0]), ("value", columns[1])):
            _check_number(name, position, label, pair[column])
        positions.append(position)
    timestamps = np.fromiter((pairs[i][columns[0]] for i in positions), dtype=np.float64, count=len(positions))
    values = np.fromiter((pairs[i][columns[1]] for i in positions), dtype=np.float64, count=len(positions))
    return timestamps, values, np.array(positions, dtype=np.int64)


def _check_number(name: str, position: int, label: str, x: Any) -> None:
    if not is_number(x):
        raise SeriesFormatError(f"{quote_name(name)}: datapoint {position} has a non-numeric {label}: "
                                f"{excerpt.describe(x)}")
    try:
        finite = math.isfinite(x)
    except OverflowError:  # an integer beyond the float range
        finite = False
    if not finite:
        raise SeriesFormatError(f"{quote_name(name)}: datapoint {position} has a non-finite {label}: "
                                f"{excerpt.describe(x)}")


def _check_increasing(name: str, timestamps: np.ndarray, positions: np.ndarray | None) -> None:
    steps = np.diff(timestamps)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        kind = "duplicate" if steps[bad[0]] == 0 else "out-of-order"
        position = row if positions is None else int(positions[row])
        raise SeriesFormatError(
            f"{quote_name(name)}: datapoint {position} has a {kind} timestamp {timestamps[row]:.17g}"
            f" (previous {timestamps[row - 1]:.17g})"
        )
