"""Numbers and times in CSV fields: decimal numbers only, epoch seconds or ISO 8601 times.

A time without an offset is in the given zone (``--tz``). A local time that occurs twice (the hour
repeated when summer time ends) has two readings, ``fold`` 0 and 1; the readers take the second when
the first would not follow the previous datapoint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo

from skyline_analyzer.detection.series import Number

#: A decimal number as CSV fields hold it: no ``nan``, ``inf``, hexadecimal or ``_`` separators.
NUMBER_PATTERN = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
_INTEGER = re.compile(r"[+-]?\d+")
#: Distinct time strings remembered (a Graphite export repeats the same times for every series).
TIME_CACHE = 1 << 16

Readings = tuple[Number, Number]


def parse_number(text: str) -> Number | None:
    """An int or float from a decimal number, None when ``text`` is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    return int(text) if _INTEGER.fullmatch(text) else float(text)


class TimeParser:
    """Epoch seconds of CSV time fields, remembering the readings of ISO times already seen."""

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._cache: dict[str, Readings] = {}

    def __call__(self, text: str) -> Readings | None:
        """The two readings of ``text`` (equal unless it is a repeated local time), None if it is no time."""
        number = parse_number(text)
        if number is not None:
            return number, number
        readings = self._cache.get(text)
        if readings is None:
            readings = self._read_iso(text)
            if readings is None:
                return None
            if len(self._cache) >= TIME_CACHE:
                self._cache.clear()
            self._cache[text] = readings
        return readings

    def unambiguous(self, times: Sequence[str]) -> list[Number] | None:
        """The epoch of each ISO time in ``times``, or None if one is no time or has two readings."""
        unique = set(times)
        if len(self._cache) + len(unique) > TIME_CACHE:
            self._cache.clear()
        epochs: dict[str, Number] = {}
        for text in unique:
            readings = self._cache.get(text)
            if readings is None:
                readings = self._read_iso(text)
                if readings is None:
                    return None
                self._cache[text] = readings
            if readings[0] != readings[1]:
                return None
            epochs[text] = readings[0]
        return list(map(epochs.__getitem__, times))

    def _read_iso(self, text: str) -> Readings | None:
        try:
            moment = datetime.fromisoformat(text.strip())
            if moment.tzinfo is not None:
                return _epoch(moment), _epoch(moment)
            return _epoch(moment.replace(tzinfo=self._zone)), _epoch(moment.replace(tzinfo=self._zone, fold=1))
        except (ValueError, OverflowError):  # not a time, or one beyond what the platform can convert
            return None


def _epoch(moment: datetime) -> Number:
    seconds = moment.timestamp()
    return int(seconds) if seconds.is_integer() else seconds
