"""What a datapoint is, and checking one element a listener decoded: ``(name, (timestamp, value))``.

The original queued whatever it decoded and let the worker fail on it later, losing the rest of a chunk.
Here each datapoint is checked where it arrives, and the only error checking can raise is
:class:`~skyline_analyzer.exceptions.BadInput`, whose reason is counted:

* the name is text (``str``, or bytes that are UTF-8: Python 2 relays and msgpack ``bin``), non-empty, with
  no whitespace or control character (NUL, ESC...), encodable as UTF-8 (a lone surrogate is not: Redis keys
  are bytes), and at most ``HORIZON_MAX_NAME_BYTES`` bytes of it;
* the timestamp and the value are finite numbers (``bool`` is not a number here) msgpack can encode: an
  int in ``[-2**63, 2**64)`` or a float. Numbers keep the type the sender used, as in the original.

Nothing here renders the input: a :class:`BadInput` formats its value (bounded) only when it is logged.
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from typing import Any

from skyline_analyzer.config import Settings
from skyline_analyzer.exceptions import BadInput, Rejection
from skyline_analyzer.horizon.name_cache import NameCache

#: A datapoint as listeners queue it and workers write it.
Datapoint = tuple[str, tuple[int | float, int | float]]

# msgpack encodes integers in [-2**63, 2**64); outside that packb raises in the worker.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
# Whitespace separates plaintext fields; control characters (escape sequences, NUL) are in no real name.
_BAD_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f]")


def number(value: Any, what: str) -> int | float:
    """``value`` if it is a finite int or float msgpack can encode; raise :class:`BadInput`."""
    # Exact type tests: they exclude bool, and they are what makes this cheap enough to run per datagram.
    kind = type(value)
    if kind is float:
        # inf - inf and nan - nan are nan, never 0.
        if value - value == 0.0:
            return value
        raise BadInput(Rejection.NOT_FINITE, f"{what} is not finite", value)
    if kind is int:
        if INT_MIN <= value <= INT_MAX:
            return value
        raise BadInput(Rejection.OUT_OF_RANGE, f"{what} is out of msgpack's integer range", value)
    raise BadInput(Rejection.NOT_A_NUMBER, f"{what} is not a number", value)


class Validator:
    """Checks names and datapoints for one listener process, remembering the names found valid."""

    def __init__(self, max_name_bytes: int, cache_bytes: int) -> None:
        self.max_name_bytes = max_name_bytes
        self._valid = NameCache(cache_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Validator:
        return cls(settings.HORIZON_MAX_NAME_BYTES, settings.HORIZON_CACHE_BYTES)

    def name(self, name: Any) -> str:
        """``name`` as a checked ``str``; raise :class:`BadInput`."""
        kind = type(name)
        if kind is str:
            # A character is at least one byte: a name longer in characters is too long in bytes. Checked
            # before the cache, whose lookup would hash the whole string.
            if len(name) > self.max_name_bytes:
                raise BadInput(Rejection.NAME_TOO_LONG, f"metric name is over {self.max_name_bytes} bytes", name)
            if self._valid.get(name):
                return name
            if not name.isascii():
                try:
                    size = len(name.encode("utf-8"))
                except UnicodeEncodeError:
                    raise BadInput(Rejection.NAME_NOT_UTF8, "metric name cannot be encoded as UTF-8", name) from None
                if size > self.max_name_bytes:
                    raise BadInput(Rejection.NAME_TOO_LONG, f"metric name is over {self.max_name_bytes} bytes", name)
        elif kind is bytes or kind is bytearray:
            if len(name) > self.max_name_bytes:
                raise BadInput(Rejection.NAME_TOO_LONG, f"metric name is over {self.max_name_bytes} bytes", name)
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(Rejection.NAME_NOT_UTF8, "metric name is not UTF-8", name) from None
            if self._valid.get(name):
                return name
        else:
            raise BadInput(Rejection.NAME_NOT_TEXT, "metric name is not a string", name)
        if not name or _BAD_CHARACTER.search(name):
            raise BadInput(Rejection.NAME_CHARACTERS, "metric name is empty or has whitespace or control characters",
                           name)
        self._valid.put(name, True)
        return name

    def datapoint(self, item: Any) -> Datapoint:
        """Check one decoded ``(name, (timestamp, value))``; raise :class:`BadInput`."""
        if type(item) not in (list, tuple) or len(item) != 2:
            raise BadInput(Rejection.NOT_A_DATAPOINT, "not a (name, (timestamp, value)) pair", item)
        name, pair = item
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise BadInput(Rejection.NOT_A_DATAPOINT, "not a (timestamp, value) pair", pair)
        return self.name(name), (number(pair[0], "timestamp"), number(pair[1], "value"))


class Refused:
    """The inputs of one frame (or one read) that were refused: a count per reason, and the first of them."""

    def __init__(self) -> None:
        self.counts: Counter[Rejection] = Counter()
        self.first: BadInput | None = None

    def add(self, exc: BadInput) -> None:
        # A caught exception's traceback holds the frames it passed through, and with them the input and
        # this object: a reference cycle that would keep every refused frame alive until the next garbage
        # collection (a hundred 1 MB names, say). Nothing here needs the traceback.
        exc.__traceback__ = None
        exc.__context__ = None
        self.counts[exc.reason] += 1
        if self.first is None:
            self.first = exc

    def total(self) -> int:
        return sum(self.counts.values())


def unexpected(exc: Exception, what: str, value: Any) -> BadInput:
    """A defect met while ``what`` was handled, as a rejection of that one input.

    Only the exception's type is in the message: its text may quote the input unbounded. Its traceback is
    kept formatted, not as frames (see :meth:`Refused.add`).
    """
    bad = BadInput(Rejection.UNEXPECTED, f"{type(exc).__name__} while handling {what}", value)
    bad.trace = "".join(traceback.format_tb(exc.__traceback__))
    return bad
