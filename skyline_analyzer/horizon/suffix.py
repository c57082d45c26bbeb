"""Roomba's fast path: where a value can be cut so that what remains is exactly today's rewrite.

Roomba's reference path (:mod:`skyline_analyzer.horizon.roomba`) decodes a value into Python tuples,
sorts them, keeps those newer than the cutoff, one per timestamp, and packs the result again. When a
value's timestamps are already strictly increasing, sorting and de-duplicating change nothing and what is
kept is the datapoints after some position. Packing them again reproduces their bytes exactly when each
datapoint is already in the form msgpack gives a Python number: an int in the smallest type that holds it
(non-negative ints as unsigned types) and a float as float64. Then the rewrite *is* a byte suffix of the
value, and Roomba needs only the offset where it starts: 0 means leave the key alone, the value's length
means delete it.

:func:`kept_from` finds that offset without a Python step per datapoint, reading the records with the
same vectorised machinery as :func:`skyline_analyzer.codec.decode_fast`. It answers only when it can
guarantee the reference's bytes, and returns None for everything else (unsorted or duplicated timestamps,
a float32 or a non-minimal int, a 64-bit timestamp float64 cannot hold exactly, NaN or infinity, a bare
number, corrupt bytes...): the reference path then decides, exactly as before.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# The fast decoder's record parsing (docs/formats.md#the-series-value): one implementation of the format.
from skyline_analyzer.codec import _FIXARRAY_2, _Field, _field, _layout, _numbers_at, _record_starts

#: The range of ints msgpack packs with each sized int type (the smallest type, unsigned when >= 0).
_CANONICAL_INT: dict[int, tuple[int, int]] = {
    0xCC: (0x80, 0xFF),
    0xCD: (0x100, 0xFFFF),
    0xCE: (0x10000, 0xFFFF_FFFF),
    0xCF: (0x1_0000_0000, 0xFFFF_FFFF_FFFF_FFFF),
    0xD0: (-0x80, -0x21),
    0xD1: (-0x8000, -0x81),
    0xD2: (-0x8000_0000, -0x8001),
    0xD3: (-0x8000_0000_0000_0000, -0x8000_0001),
}
_FLOAT64 = 0xCB
#: Sized timestamp types whose every number float64 holds exactly (so comparing with the cutoff is exact).
_EXACT_TIMESTAMP_TYPES = frozenset({0xCC, 0xCD, 0xCE, 0xD0, 0xD1, 0xD2, _FLOAT64})


def _canonical(field: _Field, low: float, high: float) -> bool:
    """Would msgpack pack every number of ``field``'s type in ``[low, high]`` (finite) with that type?"""
    if field.fixint or field.type_byte == _FLOAT64:
        return True
    bounds = _CANONICAL_INT.get(field.type_byte)
    return bounds is not None and bounds[0] <= low and high <= bounds[1]


def _finite_bounds(column: np.ndarray) -> tuple[float, float] | None:
    """The smallest and largest number of ``column`` as Python numbers; None when one is NaN or infinite."""
    if column.dtype.kind != "f":
        return int(column.min()), int(column.max())
    low, high = float(column.min()), float(column.max())
    # NaN propagates through min and max, and inf - inf is NaN.
    if (high - low) * 0 != 0:
        return None
    return low, high


@functools.lru_cache(maxsize=256)
def _run_of(byte: int, count: int) -> bytes:
    return bytes((byte,)) * count


def _column_holds(raw: bytes, record: int, count: int, field: _Field) -> bool:
    """Does every record of a fixed-width value have ``field``'s type byte (or a fixint of its sign)?"""
    if field.fixint:
        return field.types_match(np.frombuffer(raw, dtype=np.uint8).reshape(count, record))
    # A strided bytes slice compared with a run of the byte: cheaper than any numpy step on 1,500 records.
    return raw[field.type_offset :: record] == _run_of(field.type_byte, count)


def _fixed_values_canonical(raw: bytes, record: int, value: _Field, values: np.ndarray) -> bool:
    if value.type_byte == _FLOAT64:
        # A NaN or an infinity has every exponent bit set, so its first byte is 0x7f or 0xff: when no value
        # starts so, all are finite, found with two byte searches instead of a numeric pass.
        firsts = raw[value.payload_offset :: record]
        if b"\x7f" not in firsts and b"\xff" not in firsts:
            return True
    bounds = _finite_bounds(values)
    return bounds is not None and _canonical(value, *bounds)


def _values_canonical(raw: bytes, data: np.ndarray, value_offsets: np.ndarray) -> bool:
    """Is every value (a record's second number, whose type bytes sit at ``value_offsets``) canonical?"""
    value_types = data[value_offsets]
    # Every positive fixint is one kind of value, every negative fixint another: both are canonical.
    kinds = np.where(value_types < 0x80, 0x00, np.where(value_types >= 0xE0, 0xE0, value_types))
    for type_byte in np.flatnonzero(np.bincount(kinds, minlength=256)).tolist():
        field = _field(type_byte, 0)
        if field is None:
            return False
        if field.fixint:
            continue
        chosen = value_offsets[kinds == type_byte]
        bounds = _finite_bounds(_numbers_at(raw, field.dtype, chosen + (field.payload_offset - field.type_offset)))
        if bounds is None or not _canonical(field, *bounds):
            return False
    return True


def _records(raw: bytes) -> tuple[_Field, np.ndarray, np.ndarray | int] | None:
    """The timestamp field and timestamps of a value whose every value is canonical, and where its records start.

    The starts are one int (the record size) when every record has the same layout, else an array of
    offsets. None when the value is not such a list of datapoints.
    """
    layout = _layout(raw)
    if layout is None:
        return None
    record, timestamp, value, dtype = layout
    if not timestamp.fixint and timestamp.type_byte not in _EXACT_TIMESTAMP_TYPES:
        return None
    count, rest = divmod(len(raw), record)
    if (rest == 0 and raw[::record] == _run_of(_FIXARRAY_2, count) and _column_holds(raw, record, count, timestamp)
            and _column_holds(raw, record, count, value)):
        records = np.frombuffer(raw, dtype=dtype)
        if not _fixed_values_canonical(raw, record, value, records["value"]):
            return None
        return timestamp, records["timestamp"], record
    if timestamp.fixint:
        return None
    data = np.frombuffer(raw, dtype=np.uint8)
    starts = _record_starts(data, timestamp)
    if starts is None or not _values_canonical(raw, data, starts + 1 + timestamp.width):
        return None
    return timestamp, _numbers_at(raw, timestamp.dtype, starts + timestamp.payload_offset), starts


def kept_from(raw: bytes, cutoff: float) -> tuple[int, int] | None:
    """Where the part of ``raw`` Roomba keeps begins, and how many datapoints lie before it.

    ``(0, 0)``: nothing to drop, the value stays as it is; ``(len(raw), n)``: every datapoint is at or
    before ``cutoff``, the key goes. None: the value needs the reference path (see the module docstring).
    """
    cutoff_f = float(cutoff)
    if cutoff_f != cutoff:
        return None
    found = _records(raw)
    if found is None:
        return None
    field, stamps, starts = found
    timestamps = stamps.astype(np.float64)
    # Strictly increasing (NaN never is): nothing to sort, no timestamp to de-duplicate (exact: float64
    # holds every timestamp type taken here), and the first and last timestamps bound all the others.
    if not (timestamps[1:] > timestamps[:-1]).all():
        return None
    first, last = float(timestamps[0]), float(timestamps[-1])
    if not (math.isfinite(first) and math.isfinite(last) and _canonical(field, first, last)):
        return None
    removed = int(np.searchsorted(timestamps, cutoff_f, side="right"))
    if removed == timestamps.shape[0]:
        return len(raw), removed
    offset = removed * starts if isinstance(starts, int) else int(starts[removed])
    return offset, removed
