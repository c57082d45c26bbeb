"""A decoded time series: float64 arrays for the algorithms plus the raw last datapoint for reporting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from skyline_analyzer.exceptions import SeriesFormatError

Number = int | float


# Not frozen: a frozen dataclass's __init__ costs 0.5 µs where this one costs 0.1, and every analysed metric
# builds one of these, one Verdict and one Outcome (docs/analyzer-optimizations.md). Nothing assigns to one.
@dataclass(slots=True)
class Series:
    """``timestamps`` and ``values`` in decoded order (never sorted), and the last pair as decoded.

    The raw last pair is what the original reported: an int value stays an int (``1``, not ``1.0``) in
    the verdict's ``datapoint``, in ``anomalies.json`` and in alerts.

    ``row`` is set only by the decoder (:func:`skyline_analyzer.codec.decode_many`), whose series are rows
    of 2-D arrays: ``timestamps`` is ``timestamps.base[row]`` and ``values`` is ``values.base[row]``. The
    fast engine then analyses a run of consecutive rows in place (:func:`skyline_analyzer.detection.batch.evaluate`).
    """

    timestamps: np.ndarray
    values: np.ndarray
    last_timestamp: Number | None
    last_value: Number | None
    row: int | None = field(default=None, compare=False, repr=False)
    #: ``values.sum()``, when the decoder formed it (it sums each row to find non-finite values): the fast
    #: engine takes a block's means from it instead of reading every row again.
    value_sum: float | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def empty(cls) -> Series:
        return cls(np.empty(0), np.empty(0), None, None)

    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[Any]], name: str = "series") -> Series:
        """Build from ``[[ts, value], ...]``, rejecting anything the algorithms cannot analyse.

        Raises :class:`SeriesFormatError` naming the series and the 0-based position for: a datapoint
        that is not a pair, a non-numeric (or boolean) timestamp or value, NaN or infinity.
        """
        if len(pairs) == 0:
            return cls.empty()
        for position, pair in enumerate(pairs):
            _check_pair(name, position, pair)
        timestamps = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
        values = np.fromiter((p[1] for p in pairs), dtype=np.float64, count=len(pairs))
        return cls(timestamps, values, pairs[-1][0], pairs[-1][1])


def is_number(x: Any) -> bool:
    """A real number that is not a bool (True is an int in Python, but never a datapoint)."""
    return isinstance(x, Real) and not isinstance(x, bool)


def _check_pair(name: str, position: int, pair: Any) -> None:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise SeriesFormatError(f"{name}: datapoint {position} is not a [timestamp, value] pair: {pair!r}")
    for label, x in (("timestamp", pair[0]), ("value", pair[1])):
        if not is_number(x):
            raise SeriesFormatError(f"{name}: datapoint {position} has a non-numeric {label}: {x!r}")
        if not math.isfinite(x):
            raise SeriesFormatError(f"{name}: datapoint {position} has a non-finite {label}: {x!r}")


def check_ordered(name: str, timestamps: np.ndarray) -> None:
    """Raise :class:`SeriesFormatError` at the first timestamp that is not after its predecessor."""
    steps = np.diff(timestamps)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        position = int(bad[0]) + 1
        kind = "duplicate" if steps[bad[0]] == 0 else "out-of-order"
        raise SeriesFormatError(
            f"{name}: datapoint {position} has a {kind} timestamp {timestamps[position]:.17g}"
            f" (previous {timestamps[position - 1]:.17g})"
        )
