"""Decoding the three input protocols into validated datapoints ``(name, (timestamp, value))``.

* carbon **pickle**: one frame's payload, a pickled list of ``(name, (timestamp, value))``;
* **UDP msgpack**: one datagram, ``[name, [timestamp, value]]``;
* carbon **plaintext**: one line, ``name value timestamp``.

The original queued whatever it decoded and let the worker fail on it later, losing the rest of a chunk
(docs/departures.md#horizon). Here each datapoint is checked on arrival: the name must be a non-empty string, no
whitespace or NUL, the timestamp and value finite numbers (``bool`` is not a number here) that msgpack can
encode. Numbers keep the type the sender used, as in the original: an int stays an int. Bad input raises
:class:`BadInput`; the listener drops and counts it and carries on.
"""

from __future__ import annotations

import re
from typing import Any

import msgpack

from skyline_analyzer.horizon.unpickler import loads

#: A datapoint as listeners queue it and workers write it.
Datapoint = tuple[str, tuple[int | float, int | float]]

# msgpack encodes integers in [-2**63, 2**64); outside that packb raises in the worker.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_BAD_NAME = re.compile(r"[\s\x00]")
#: Valid names remembered (the set is emptied when it reaches this size).
VALID_NAMES_CACHED = 100_000
_INT_TEXT = re.compile(rb"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class BadInput(ValueError):
    """A frame, datagram, line or datapoint that cannot be stored; the message says why."""


def _number(value: Any, what: str) -> int | float:
    # Exact type tests: they exclude bool, and they are what makes this cheap enough to run per datagram.
    kind = type(value)
    if kind is float:
        # inf - inf and nan - nan are nan, never 0.
        if value - value == 0.0:
            return value
        raise BadInput(f"{what} is not finite: {value!r}")
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise BadInput(f"{what} is out of range: {value!r:.80}")
    raise BadInput(f"{what} is not a number: {value!r:.80}")


# Names already found valid: at tens of thousands of datapoints a second most names repeat.
_valid_names: set[str] = set()


def _name(name: Any) -> str:
    if type(name) is str and name in _valid_names:
        return name
    if isinstance(name, bytes):
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"metric name is not UTF-8: {name!r:.80}") from exc
    if type(name) is not str:
        raise BadInput(f"metric name is not a string: {name!r:.80}")
    if not name or _BAD_NAME.search(name):
        raise BadInput(f"metric name is empty or contains whitespace or NUL: {name!r:.80}")
    if len(_valid_names) >= VALID_NAMES_CACHED:
        _valid_names.clear()
    _valid_names.add(name)
    return name


def datapoint(item: Any) -> Datapoint:
    """Validate one decoded ``(name, (timestamp, value))``; raise :class:`BadInput`."""
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise BadInput(f"not a (name, (timestamp, value)) pair: {item!r:.80}")
    name, pair = item
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise BadInput(f"not a (timestamp, value) pair: {pair!r:.80}")
    return _name(name), (_number(pair[0], "timestamp"), _number(pair[1], "value"))


def decode_pickle(payload: bytes) -> tuple[list[Datapoint], list[str]]:
    """The datapoints of one pickle frame and a reason for each element rejected.

    A payload that does not unpickle (including one naming any global), or is not a list or tuple,
    raises :class:`BadInput` and the whole frame is rejected. A bad element only drops that element,
    as carbon's own pickle receiver does.
    """
    try:
        obj = loads(payload)
    except Exception as exc:
        raise BadInput(f"pickle rejected: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, (list, tuple)):
        raise BadInput(f"pickle payload is a {type(obj).__name__}, not a list of datapoints")
    good: list[Datapoint] = []
    bad: list[str] = []
    for item in obj:
        try:
            good.append(datapoint(item))
        except BadInput as exc:
            bad.append(str(exc))
    return good, bad


def decode_datagram(data: bytes | memoryview) -> Datapoint:
    """The datapoint of one UDP datagram: exactly one msgpack ``[name, [timestamp, value]]``."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
    except Exception as exc:
        raise BadInput(f"datagram is not one msgpack object: {type(exc).__name__}: {exc} {bytes(data[:40])!r}") from exc
    return datapoint(obj)


def _text_number(token: bytes, what: str) -> int | float:
    # int() and float() would also take '1_000', 'nan' and 'infinity'; carbon's senders never write those.
    if _INT_TEXT.fullmatch(token):
        return _number(int(token), what)
    if _FLOAT_TEXT.fullmatch(token):
        return _number(float(token), what)
    raise BadInput(f"{what} is not a number: {token!r:.80}")


def decode_line(line: bytes) -> Datapoint:
    """The datapoint of one plaintext line ``name value timestamp`` (the newline already removed).

    Integer text stays an int (``1700000000``), anything else with a point or exponent is a float.
    """
    fields = line.split()
    if len(fields) != 3:
        raise BadInput(f"line does not have 3 fields 'name value timestamp': {line!r:.80}")
    name, value, timestamp = fields
    return _name(name), (_text_number(timestamp, "timestamp"), _text_number(value, "value"))
