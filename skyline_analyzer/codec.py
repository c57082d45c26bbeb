"""The Horizon value format of ``metrics.<name>`` (SPEC.md 1.2).

A value is a concatenation of independent msgpack arrays ``[timestamp, value]``: no outer array, count
or delimiter. Horizon workers APPEND ``packb((ts, value))``; Roomba rewrites the whole value by packing
the list of pairs and stripping the array header (1, 3 or 5 bytes for <= 15, <= 65535 and more items).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.series import Series


def encode_datapoint(timestamp: Any, value: Any) -> bytes:
    """One datapoint as Horizon APPENDs it."""
    return msgpack.packb((timestamp, value))


def encode(pairs: Iterable[Sequence[Any]]) -> bytes:
    """A whole series in the concatenated format (what repeated APPENDs produce)."""
    return b"".join(msgpack.packb(tuple(pair)) for pair in pairs)


def array_header_length(count: int) -> int:
    """Bytes of the msgpack array header for ``count`` items: fixarray, array 16 or array 32."""
    if count <= 15:
        return 1
    if count <= 0xFFFF:
        return 3
    return 5


def encode_as_roomba(pairs: Sequence[Sequence[Any]]) -> bytes:
    """A series as Roomba writes it: ``packb(list_of_pairs)`` with the array header stripped."""
    packed = msgpack.packb([tuple(pair) for pair in pairs])
    return packed[array_header_length(len(pairs)) :]


def decode_pairs(raw: bytes, name: str = "series") -> list[tuple[Any, ...]]:
    """Every datapoint of a value, as decoded tuples; :class:`SeriesFormatError` if corrupt or truncated."""
    unpacker = msgpack.Unpacker(use_list=False, raw=False, strict_map_key=False)
    unpacker.feed(raw)
    pairs = []
    # The end of the last *complete* object: after an incomplete trailing object the unpacker's own
    # position already counts the partial bytes it buffered, so it cannot reveal a truncation.
    complete = 0
    try:
        for pair in unpacker:
            pairs.append(pair)
            complete = unpacker.tell()
    except Exception as exc:
        raise SeriesFormatError(f"{name}: corrupt msgpack value: {type(exc).__name__}: {exc}") from exc
    if complete != len(raw):
        raise SeriesFormatError(f"{name}: truncated msgpack value: {len(raw) - complete} trailing bytes")
    return pairs


def decode(raw: bytes, name: str = "series") -> Series:
    """Decode a value into a :class:`Series`; corrupt bytes or a non-numeric datapoint raise."""
    return Series.from_pairs(decode_pairs(raw, name), name)
