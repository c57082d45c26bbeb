"""The Horizon value format of ``metrics.<name>`` (docs/formats.md#the-series-value).

A value is a concatenation of independent msgpack arrays ``[timestamp, value]``: no outer array, count
or delimiter. Horizon workers APPEND ``packb((ts, value))``; Roomba rewrites the whole value by packing
the list of pairs and stripping the array header (1, 3 or 5 bytes for <= 15, <= 65535 and more items).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError


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


# --- Fast decoding -----------------------------------------------------------------------------------
#
# Nearly every stored value repeats one fixed-width record: a fixarray(2) byte, a timestamp and a value,
# each with the same msgpack type in every datapoint (Horizon appends what carbon sent, Roomba rewrites
# the same types). Such a value is a 2-D byte array with one row per datapoint; after checking every
# row's type bytes it is read with one structured numpy view, without a Python step per datapoint.
# Timestamps of one type with values of several (ints of different widths: a counter crossing 127)
# are parsed by pointer doubling (:func:`_record_starts`). Anything else (other types, timestamps of
# several types, corrupt or truncated bytes, NaN) takes the reference :func:`decode`, so the result,
# and any error, is always :func:`decode`'s.

_FIXARRAY_2 = 0x92
#: msgpack type byte -> (numpy dtype of the payload, payload bytes).
_SIZED_TYPES: dict[int, tuple[str, int]] = {
    0xCA: (">f4", 4),
    0xCB: (">f8", 8),
    0xCC: ("u1", 1),
    0xCD: (">u2", 2),
    0xCE: (">u4", 4),
    0xCF: (">u8", 8),
    0xD0: ("i1", 1),
    0xD1: (">i2", 2),
    0xD2: (">i4", 4),
    0xD3: (">i8", 8),
}


@dataclass(frozen=True)
class _Field:
    """Where one number sits in a record and how to read and check it."""

    type_offset: int
    type_byte: int
    payload_offset: int
    dtype: str
    width: int  # bytes including the type byte
    fixint: bool  # the type byte is the value itself (positive or negative fixint)

    @property
    def is_float(self) -> bool:
        return self.dtype[-2] == "f"

    def types_match(self, rows: np.ndarray) -> bool:
        """Does every record (a row of bytes) have this field's type byte (or a fixint of its sign)?"""
        if not self.fixint:
            return _column_is(rows, self.type_offset, self.type_byte)
        column = rows[..., self.type_offset]
        if self.type_byte < 0x80:
            return int(column.max()) < 0x80
        return int(column.min()) >= 0xE0


def _column_is(rows: np.ndarray, offset: int, byte: int) -> bool:
    # Copying a strided column out and comparing bytes is several times faster than a numpy
    # comparison over the strided view. ``rows`` are records (the last axis: their bytes).
    column = rows[..., offset]
    return column.tobytes() == bytes((byte,)) * column.size


def _field(type_byte: int, offset: int) -> _Field | None:
    """The field whose type byte ``type_byte`` sits at ``offset`` of a record; None for other types."""
    if type_byte < 0x80:
        return _Field(offset, type_byte, offset, "u1", 1, True)
    if type_byte >= 0xE0:
        return _Field(offset, type_byte, offset, "i1", 1, True)
    if type_byte in _SIZED_TYPES:
        dtype, size = _SIZED_TYPES[type_byte]
        return _Field(offset, type_byte, offset + 1, dtype, size + 1, False)
    return None


@functools.lru_cache(maxsize=4096)
def _layout_of(timestamp_type: int, value_type: int) -> tuple[int, _Field, _Field, np.dtype] | None:
    timestamp = _field(timestamp_type, 1)
    if timestamp is None:
        return None
    value = _field(value_type, 1 + timestamp.width)
    if value is None:
        return None
    return 1 + timestamp.width + value.width, timestamp, value, _record_dtype(timestamp, value)


def _layout(raw: bytes) -> tuple[int, _Field, _Field, np.dtype] | None:
    """The record layout implied by a value's first record, or None when it is not a fixed-width pair."""
    if len(raw) < 3 or raw[0] != _FIXARRAY_2:
        return None
    timestamp = _field(raw[1], 1)
    if timestamp is None or timestamp.width + 1 >= len(raw):
        return None
    return _layout_of(raw[1], raw[1 + timestamp.width])


@functools.lru_cache(maxsize=1024)
def _record_dtype(timestamp: _Field, value: _Field) -> np.dtype:
    """A structured dtype reading the two payloads of one record."""
    return np.dtype(
        {
            "names": ["timestamp", "value"],
            "formats": [timestamp.dtype, value.dtype],
            "offsets": [timestamp.payload_offset, value.payload_offset],
            "itemsize": 1 + timestamp.width + value.width,
        }
    )


def _all_finite(column: np.ndarray) -> bool:
    """No NaN or infinity in ``column`` (NaN propagates through min and max, so two reductions suffice)."""
    return math.isfinite(column.min()) and math.isfinite(column.max())


def _python_number(x: np.generic) -> int | float:
    """What msgpack would have returned for one element: a Python int or float."""
    return int(x) if x.dtype.kind in "iu" else float(x)


def decode_fast(raw: bytes, name: str = "series") -> Series:
    """:func:`decode`, vectorised for numeric values: the same :class:`Series` (or error) in every case.

    The last datapoint keeps its decoded Python type (an int value stays an int), as in :func:`decode`.
    """
    if not raw:
        return decode(raw, name)
    layout = _layout(raw)
    if layout is None:
        return decode(raw, name)
    record, timestamp, value, dtype = layout
    fixed = len(raw) % record == 0
    if fixed:
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
        fixed = _column_is(rows, 0, _FIXARRAY_2) and timestamp.types_match(rows) and value.types_match(rows)
    if not fixed:
        mixed = None if timestamp.fixint else _decode_mixed_values(raw, timestamp)
        return decode(raw, name) if mixed is None else mixed
    records = np.frombuffer(raw, dtype=dtype)
    timestamps = records["timestamp"].astype(np.float64)
    values = records["value"].astype(np.float64)
    for field, column in ((timestamp, timestamps), (value, values)):
        # Non-finite floats are rejected by the reference, with the position in its message.
        if field.is_float and not _all_finite(column):
            return decode(raw, name)
    return Series(
        timestamps,
        values,
        _python_number(records["timestamp"][-1]),
        _python_number(records["value"][-1]),
    )


def decode_many(raws: Sequence[bytes | memoryview], names: Sequence[str],
                layout: tuple[bytearray, Sequence[int]] | None = None) -> list[Series | SeriesFormatError]:
    """:func:`decode_fast` of every value, vectorised across values: each a :class:`Series` or the error.

    Values of one length whose first records have the same types (nearly every value of an MGET chunk)
    are decoded together into two 2-D float64 arrays whose rows are the series, :data:`GROUP_ROWS`
    values at a time: one join, one type check over every record of the part, one conversion. A part
    that fails the check, and any row holding a non-finite float, is decoded alone by
    :func:`decode_fast`, so every result (or error) is its result. The per-value cost is then a few
    dictionary and object operations, not a dozen numpy calls.

    ``layout``, when the values are slices of one buffer (a :class:`skyline_analyzer.bulk_reader.Reply`),
    is that buffer and each value's offset in it: a part whose values lie at a fixed stride (as one
    length's values do in an MGET reply) is then read in place, as one strided array, instead of joined.
    """
    results: list[Series | SeriesFormatError | None] = [None] * len(raws)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for index, raw in enumerate(raws):
        size = len(raw)
        at = 1 + _WIDTHS[raw[1]] if size > 2 else size
        if at < size:
            groups.setdefault((size, raw[1], raw[at]), []).append(index)
        else:
            results[index] = _decoded_alone(raw, names[index])
    for indices in groups.values():
        alone = indices if len(indices) == 1 else _decode_group(raws, indices, results, layout)
        for index in alone:
            results[index] = _decoded_alone(raws[index], names[index])
    return results  # type: ignore[return-value]


def _decoded_alone(raw: bytes | memoryview, name: str) -> Series | SeriesFormatError:
    try:
        return decode_fast(raw, name)
    except SeriesFormatError as exc:
        return exc


#: Values of a group checked and converted at a time (joined, or in place in the reply's buffer): their
#: bytes (about 700 kB for a day of 60 s data) are still in the core's cache when the type check and the
#: two conversions read them again, where a whole chunk's (10 MB) would be read back from memory three times.
GROUP_ROWS = 32


def _decode_group(raws: Sequence[bytes | memoryview], indices: list[int],
                  results: list[Series | SeriesFormatError | None],
                  layout: tuple[bytearray, Sequence[int]] | None) -> list[int]:
    """Fill ``results`` for the values of one (length, first types) group; return those left to decode alone.

    The series are the rows of two 2-D float64 arrays for the whole group, so that the engine can take a
    run of them as one block without copying (:func:`skyline_analyzer.detection.batch.evaluate`).
    """
    first = _layout(raws[indices[0]])
    size = len(raws[indices[0]])
    if first is None or size % first[0] != 0:
        return indices
    record, timestamp, value, dtype = first
    length = size // record
    timestamps = np.empty((len(indices), length))
    values = np.empty((len(indices), length))
    alone = []
    for lo in range(0, len(indices), GROUP_ROWS):
        part = indices[lo : lo + GROUP_ROWS]
        base, offset, stride = _part_bytes(raws, part, size, layout)
        shape, strides = (len(part), length), (stride, record)
        heads = np.ndarray(shape, _head_dtype(record), base, offset, strides)["head"]
        rows = np.ndarray((*shape, record), np.uint8, base, offset, (*strides, 1))
        if not (_heads_match(heads, timestamp, rows) and value.types_match(rows)):
            alone.extend(part)
            continue
        records = np.ndarray(shape, dtype, base, offset, strides)
        part_timestamps = timestamps[lo : lo + len(part)]
        part_values = values[lo : lo + len(part)]
        part_timestamps[...] = records["timestamp"]
        part_values[...] = records["value"]
        finite = np.ones(len(part), dtype=bool)
        value_sums: list[float | None] = [None] * len(part)
        for field, block in ((timestamp, part_timestamps), (value, part_values)):
            if field.is_float:
                # A NaN or an infinity makes its row's sum non-finite, so one reduction finds every such
                # row; a finite row whose sum overflows is only decoded alone, which checks it exactly.
                with np.errstate(over="ignore", invalid="ignore"):
                    sums = np.add.reduce(block, axis=1)
                finite &= np.isfinite(sums)
                if block is part_values:
                    value_sums = sums.tolist()
        # tolist() gives what _python_number gives: an int for integer types, a float for float types.
        last_timestamps = records["timestamp"][:, -1].tolist()
        last_values = records["value"][:, -1].tolist()
        for row, (index, ok) in enumerate(zip(part, finite.tolist(), strict=True), start=lo):
            if ok:
                results[index] = Series(timestamps[row], values[row], last_timestamps[row - lo],
                                        last_values[row - lo], row, value_sums[row - lo])
            else:
                alone.append(index)
    return alone


def _part_bytes(raws: Sequence[bytes | memoryview], part: list[int], size: int,
                layout: tuple[bytearray, Sequence[int]] | None) -> tuple[bytes | bytearray, int, int]:
    """Where a part's ``size``-byte values lie: ``(buffer, offset of the first, stride between values)``.

    In place in the ``layout``'s buffer when they are evenly spaced there (and do not overlap), else a
    join of them (stride ``size``).
    """
    if layout is not None:
        buffer, starts = layout
        offsets = [starts[i] for i in part]
        stride = offsets[1] - offsets[0] if len(offsets) > 1 else size
        if (stride >= size and offsets[0] >= 0 and offsets[-1] + size <= len(buffer)
                and all(later - earlier == stride for earlier, later in itertools.pairwise(offsets))):
            return buffer, offsets[0], stride
    return b"".join([raws[i] for i in part]), 0, size


def _heads_match(heads: np.ndarray, timestamp: _Field, rows: np.ndarray) -> bool:
    """Does every record start with the fixarray byte and the timestamp's type byte?

    ``heads`` are the first two bytes of each record as one field, ``rows`` the records' bytes. For a sized
    timestamp type both bytes are compared as one 2-byte column (one strided copy, not two).
    """
    if timestamp.fixint:
        return _column_is(rows, 0, _FIXARRAY_2) and timestamp.types_match(rows)
    return heads.tobytes() == bytes((_FIXARRAY_2, timestamp.type_byte)) * heads.size


@functools.lru_cache(maxsize=64)
def _head_dtype(record: int) -> np.dtype:
    """The first two bytes of each ``record``-byte record, as one field."""
    return np.dtype({"names": ["head"], "formats": ["V2"], "offsets": [0], "itemsize": record})


#: Bytes of a msgpack number by its type byte (fixints are one byte); 0 for anything else.
_NUMBER_WIDTH = np.zeros(256, dtype=np.int64)
_NUMBER_WIDTH[:0x80] = 1
_NUMBER_WIDTH[0xE0:] = 1
for _type_byte, (_dtype, _size) in _SIZED_TYPES.items():
    _NUMBER_WIDTH[_type_byte] = _size + 1
#: The same table as bytes, for one lookup per value without a numpy call.
_WIDTHS = bytes(_NUMBER_WIDTH.tolist())


def _record_starts(data: np.ndarray, timestamp: _Field) -> np.ndarray | None:
    """Start offsets of every record of a value whose values vary in type, or None if it does not parse.

    Records are a fixarray byte, the timestamp (one type throughout) and a value of any numeric type.
    Every place where a record *could* start (the fixarray byte followed by the timestamp's type byte)
    gets the place its record would end; the real records are the chain of such places from offset 0 to
    the end of the value. The chain is collected by pointer doubling, ``log2(records)`` vectorised
    steps, instead of a Python step per record.
    """
    size = data.shape[0]
    value_at = 1 + timestamp.width
    last = size - value_at
    if last <= 0:
        return None
    candidates = np.flatnonzero((data[:last] == _FIXARRAY_2) & (data[1 : last + 1] == timestamp.type_byte))
    if candidates.shape[0] == 0 or candidates[0] != 0:
        return None
    widths = _NUMBER_WIDTH[data[candidates + value_at]]
    ends = candidates + value_at + widths
    count = candidates.shape[0]
    end_state, dead_state = count, count + 1
    # Candidate index of the record starting at each offset; the end of the value is the end state.
    index_at = np.full(size + 1, dead_state, dtype=np.int64)
    index_at[candidates] = np.arange(count)
    index_at[size] = end_state
    jump = np.empty(count + 2, dtype=np.int64)
    jump[:count] = np.where((widths > 0) & (ends <= size), index_at[np.minimum(ends, size)], dead_state)
    jump[end_state], jump[dead_state] = end_state, dead_state
    reached = np.zeros(1, dtype=np.int64)
    while True:
        # Invariant: ``reached`` holds the first 2**k records of the chain, ``jump`` leaps 2**k records.
        ahead = jump[reached]
        reached = np.concatenate([reached, ahead])
        if ahead[-1] >= end_state:
            break
        jump = jump[jump]
    if (reached == dead_state).any():
        return None
    # The chain visits candidates in increasing order, and ``reached`` lists it in chain order.
    return candidates[reached[reached < end_state]]


def _numbers_at(raw: bytes, dtype: str, offsets: np.ndarray) -> np.ndarray:
    """The numbers of type ``dtype`` whose bytes start at each of ``offsets`` (one gather, any alignment)."""
    width = np.dtype(dtype).itemsize
    # A view whose element i is the number starting at byte i: overlapping, unaligned, read-only.
    every_offset = np.ndarray(shape=(len(raw) - width + 1,), dtype=dtype, buffer=raw, strides=(1,))
    return every_offset[offsets]


def _decode_mixed_values(raw: bytes, timestamp: _Field) -> Series | None:
    """A value whose timestamps share one type but whose values do not (e.g. ints of several widths)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    starts = _record_starts(data, timestamp)
    if starts is None:
        return None
    value_offsets = starts + 1 + timestamp.width
    value_types = data[value_offsets]
    # Every positive fixint is one kind of value, every negative fixint another (the byte is the value).
    value_kinds = np.where(value_types < 0x80, 0x00, np.where(value_types >= 0xE0, 0xE0, value_types))
    stamps = _numbers_at(raw, timestamp.dtype, starts + timestamp.payload_offset)
    timestamps = stamps.astype(np.float64)
    values = np.empty(starts.shape[0], dtype=np.float64)
    last_value: int | float = 0
    for type_byte in np.flatnonzero(np.bincount(value_kinds, minlength=256)).tolist():
        chosen = np.flatnonzero(value_kinds == type_byte)
        field = _field(type_byte, 0)
        if field is None:
            return None
        typed = _numbers_at(raw, field.dtype, value_offsets[chosen] + (field.payload_offset - field.type_offset))
        values[chosen] = typed
        if field.is_float and not _all_finite(values[chosen]):
            return None
        if chosen[-1] == starts.shape[0] - 1:
            last_value = _python_number(typed[-1])
    if timestamp.is_float and not _all_finite(timestamps):
        return None
    return Series(timestamps, values, _python_number(stamps[-1]), last_value)
