"""``codec.decode_fast`` gives exactly what ``codec.decode`` gives, for every encoding, and is vectorised."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyline_analyzer import codec
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import SeriesFormatError

TS = 1_700_000_000

# Every msgpack width of int, both signs, and floats (finite and not).
ints = st.sampled_from([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1]) | st.integers(
    -(2**63), 2**64 - 1
) | st.sampled_from([-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)])
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
numbers = ints | floats
others = st.sampled_from([None, True, False, "1", b"1", [1], {"a": 1}])


def same(raw: bytes) -> None:
    """decode_fast agrees with decode: same arrays, same raw last pair (value and type), or same error."""
    try:
        want = codec.decode(raw, "m")
    except SeriesFormatError as exc:
        with pytest.raises(SeriesFormatError) as caught:
            codec.decode_fast(raw, "m")
        assert str(caught.value) == str(exc)
        return
    got = codec.decode_fast(raw, "m")
    assert isinstance(got, Series)
    assert got.timestamps.dtype == np.float64 and got.values.dtype == np.float64
    assert np.array_equal(got.timestamps, want.timestamps)
    assert np.array_equal(got.values, want.values)
    for a, b in ((got.last_timestamp, want.last_timestamp), (got.last_value, want.last_value)):
        assert type(a) is type(b) and (a == b or (a != a and b != b))


def uniform(timestamp_kind: st.SearchStrategy, value_kind: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(st.tuples(timestamp_kind, value_kind), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([TS, float(TS), 2**40, -5, 3, 200, 40000]), ints | floats, st.integers(1, 40), st.booleans())
def test_fixed_width_values(ts_start: int | float, value: int | float, count: int, roomba: bool) -> None:
    """One type for every timestamp and every value: the vectorised path."""
    pairs = [(ts_start + i if isinstance(ts_start, int) else ts_start + 60.0 * i, value) for i in range(count)]
    raw = codec.encode_as_roomba(pairs) if roomba else codec.encode(pairs)
    same(raw)


@settings(max_examples=300, deadline=None)
@given(uniform(ints | floats, numbers))
def test_any_mix_of_numbers(pairs: list[tuple]) -> None:
    same(codec.encode(pairs))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([TS, float(TS), 2**40, 300, 70000]),
    st.lists(numbers, min_size=1, max_size=60),
    st.booleans(),
    st.integers(0, 30),
)
def test_one_timestamp_type_with_values_of_any_types(
    ts_start: int | float, values: list, roomba: bool, cut: int
) -> None:
    """The pointer-doubling path: timestamps of one type, values of mixed types, whole or truncated."""
    pairs = [(ts_start + i if isinstance(ts_start, int) else ts_start + 60.0 * i, v) for i, v in enumerate(values)]
    raw = codec.encode_as_roomba(pairs) if roomba else codec.encode(pairs)
    same(raw)
    same(raw[: len(raw) - cut % 10])


@settings(max_examples=200, deadline=None)
@given(uniform(st.floats(-(2.0**100), 2.0**100, width=32), st.floats(width=32)))
def test_single_precision_floats(pairs: list[tuple]) -> None:
    packed = b"".join(msgpack.packb(pair, use_single_float=True) for pair in pairs)
    same(packed)


@settings(max_examples=200, deadline=None)
@given(uniform(ints, numbers | others), st.integers(0, 600), st.binary(max_size=3))
def test_corrupt_truncated_and_foreign_values(pairs: list[tuple], cut: int, junk: bytes) -> None:
    raw = codec.encode(pairs)
    same(raw[: max(0, len(raw) - cut % 7)])
    same(raw + junk)
    same(junk + raw)


def test_the_fast_path_serves_a_fixed_width_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common layouts never reach the per-datapoint decoder; a mixed-width one does."""
    calls = []
    monkeypatch.setattr(codec, "decode", lambda raw, name="series": calls.append(name) or Series.empty())
    for pairs in (
        [(TS + 60 * i, 1.5 * i) for i in range(1440)],  # uint32 + float64: Horizon's usual record
        [(float(TS + 60 * i), 2.0) for i in range(1440)],  # float64 + float64 (carbon's float timestamps)
        [(TS + 60 * i, 7) for i in range(100)],  # uint32 + positive fixint
        [(TS + 60 * i, -7) for i in range(100)],  # uint32 + negative fixint
        [(TS + 60 * i, 70000 + i) for i in range(100)],  # uint32 + uint32
    ):
        series = codec.decode_fast(codec.encode(pairs), "fixed")
        assert len(series) == len(pairs) and series.last_value == pairs[-1][1]
        assert type(series.last_value) is type(pairs[-1][1])
    # Ints of several widths (a counter crossing 127, 255, 65535) and ints mixed with floats: the
    # pointer-doubling path, still without the per-datapoint decoder.
    mixed = [(TS + 60 * i, v) for i, v in enumerate([1, 1000, 2.5, -3, 70000, 2**40, 200, -200])]
    series = codec.decode_fast(codec.encode(mixed), "mixed")
    assert series.values.tolist() == [float(v) for _, v in mixed] and series.last_value == -200
    assert calls == []
    codec.decode_fast(codec.encode([(TS, 1), (TS + 60, True)]), "foreign")
    codec.decode_fast(codec.encode([(TS, 1), (float(TS + 60), 2)]), "timestamps of two types")
    assert calls == ["foreign", "timestamps of two types"]


def test_empty_and_nonfinite() -> None:
    assert len(codec.decode_fast(b"")) == 0
    with pytest.raises(SeriesFormatError, match="datapoint 2 has a non-finite value"):
        codec.decode_fast(codec.encode([(TS, 1.0), (TS + 1, 2.0), (TS + 2, math.inf)]), "m")
    with pytest.raises(SeriesFormatError, match="datapoint 1 has a non-finite timestamp"):
        codec.decode_fast(codec.encode([(1.0, 1.0), (math.nan, 2.0)]), "m")


def same_as_alone(raws: list[bytes], views: list[memoryview] | None = None,
                  layout: tuple[bytearray, list[int]] | None = None) -> list:
    """decode_many gives, for every value, what decode_fast gives alone: the same series or error. With
    ``views`` (the values as slices of a reply's buffer) and ``layout``, decode_many reads those. Returns
    what decode_many gave."""
    names = [f"m{i}" for i in range(len(raws))]
    decoded = codec.decode_many(raws if views is None else views, names, layout)
    for raw, name, got in zip(raws, names, decoded, strict=True):
        try:
            want = codec.decode_fast(raw, name)
        except SeriesFormatError as exc:
            assert isinstance(got, SeriesFormatError) and str(got) == str(exc)
            continue
        assert isinstance(got, Series)
        assert got.timestamps.dtype == np.float64 and got.values.dtype == np.float64
        assert np.array_equal(got.timestamps, want.timestamps) and np.array_equal(got.values, want.values)
        for a, b in ((got.last_timestamp, want.last_timestamp), (got.last_value, want.last_value)):
            assert type(a) is type(b) and a == b
        # The decoder's row sum, when it formed one, is numpy's sum of the series (the engine's means).
        assert got.value_sum is None or got.value_sum == float(np.sum(want.values))
    return decoded


# Values that share a record width but not their types (f8, u8 and i8 are all 9 bytes), NaN and infinity
# in one row of a group, ints of several widths, foreign types.
group_values = st.sampled_from([1.5, -2.25, 2**40, -(2**40), 2**63, 7, -7, 300, math.nan, math.inf, None, True])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([TS, float(TS), 2**40]), st.lists(group_values, min_size=1, max_size=4),
                       st.integers(0, 3), st.booleans()), min_size=1, max_size=12),
    st.integers(1, 30),
    st.binary(max_size=3),
)
def test_decode_many_is_decode_fast_of_each(specs: list, length: int, junk: bytes) -> None:
    """Groups of equal-length values with the same first types, and every way a member can differ."""
    raws = []
    for ts_start, choices, damage, roomba in specs:
        pairs = [(ts_start + i if isinstance(ts_start, int) else ts_start + 60.0 * i, choices[i % len(choices)])
                 for i in range(length)]
        raw = codec.encode_as_roomba(pairs) if roomba else codec.encode(pairs)
        raws.append([raw, raw[:-1], raw + junk, junk][damage])
    same_as_alone(raws)


def test_decode_many_decodes_a_chunk_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal-length values of one layout never reach decode_fast; rows are the series, each its own."""
    calls = []
    original = codec.decode_fast
    monkeypatch.setattr(codec, "decode_fast", lambda raw, name="series": calls.append(name) or original(raw, name))
    raws = [codec.encode([(TS + 60 * i, float(k * i)) for i in range(1440)]) for k in range(50)]
    raws.append(codec.encode([(TS + 60 * i, 3) for i in range(10)]))  # alone in its group
    raws.append(b"")
    series = codec.decode_many(raws, [f"m{k}" for k in range(len(raws))])
    assert sorted(calls) == ["m50", "m51"]
    assert [s.values[-1] for s in series[:50]] == [float(k * 1439) for k in range(50)]
    assert series[50].last_value == 3 and type(series[50].last_value) is int and len(series[51]) == 0
    same_as_alone(raws)


def test_a_group_is_decoded_in_parts_and_a_bad_part_alone() -> None:
    """A group longer than GROUP_ROWS is joined a part at a time. A part failing the type check (one record
    whose value is a uint64 among float64s: the same width) is decoded value by value; the other parts'
    series are rows of the group's arrays; a row with a NaN is the reference's error."""
    count = 2 * codec.GROUP_ROWS + 6
    bad, nan = codec.GROUP_ROWS + 3, 5
    raws = [codec.encode([(TS + 60 * i, 2**40 if (k, i) == (bad, 20) else math.nan if (k, i) == (nan, 30)
                           else float(k + i) + 0.5) for i in range(50)]) for k in range(count)]
    assert len({len(raw) for raw in raws}) == 1
    series = codec.decode_many(raws, [f"m{k}" for k in range(count)])
    same_as_alone(raws)
    assert isinstance(series[nan], SeriesFormatError) and series[bad].values[20] == 2.0**40
    part = range(codec.GROUP_ROWS, 2 * codec.GROUP_ROWS)
    assert [one.row for one in series if isinstance(one, Series)] == [
        None if k in part else k for k in range(count) if k != nan]


@pytest.mark.parametrize("first_timestamp", [TS, 1, 2.5])  # uint32, positive fixint, float64 timestamps
def test_a_record_of_another_head_sends_its_part_alone(first_timestamp: int | float) -> None:
    """Equal-length values whose first records agree, one with a later record of another kind: a timestamp
    of another type of the same width (valid msgpack, the same number), or a byte that is no fixarray(2)
    (corrupt). The part holding it is decoded value by value: the first as the same series, the second as
    the reference's error; a row whose values overflow when summed is decoded alone, as itself."""
    count = codec.GROUP_ROWS + 4
    raws = [codec.encode([(first_timestamp + i, float(k + i)) for i in range(40)]) for k in range(count)]
    record = len(raws[0]) // 40
    retyped, corrupt, huge = 3, 5, codec.GROUP_ROWS + 1
    raw = bytearray(raws[retyped])
    type_byte = {0xCE: 0xD2, 0xCB: 0xCB}.get(raw[1], raw[1])
    if type_byte == 0xD2:
        raw[20 * record + 1] = type_byte  # int32 instead of uint32: the same timestamp
    else:
        raw[20 * record + 1] ^= 0x01  # a fixint one more or less, or a float64 turned into a uint64 type
    raws[retyped] = bytes(raw)
    raw = bytearray(raws[corrupt])
    raw[30 * record] = 0x93
    raws[corrupt] = bytes(raw)
    raws[huge] = codec.encode([(first_timestamp + i, 1.5e308) for i in range(40)])
    assert len({len(raw) for raw in raws}) == 1
    series = codec.decode_many(raws, [f"m{k}" for k in range(count)])
    same_as_alone(raws)
    assert isinstance(series[corrupt], SeriesFormatError)
    assert isinstance(series[huge], Series) and series[huge].row is None and series[huge].values[0] == 1.5e308
    assert series[0].row is None and series[count - 1].row == count - 1


def reply_of(raws: list[bytes], gaps: list[int]) -> tuple[bytearray, list[int], list[memoryview]]:
    """The values laid out as in an MGET reply (``$<length>`` line, value, CRLF), ``gaps[i]`` more junk bytes
    before value ``i``: the buffer, each value's offset, and the values as slices of it."""
    buffer, starts = bytearray(b"*%d\r\n" % len(raws)), []
    for raw, gap in zip(raws, gaps, strict=True):
        buffer += b"\xc1" * gap + b"$%d\r\n" % len(raw)
        starts.append(len(buffer))
        buffer += raw + b"\r\n"
    whole = memoryview(buffer)
    return buffer, starts, [whole[start : start + len(raw)] for start, raw in zip(starts, raws, strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([TS, float(TS), 3]), st.lists(group_values, min_size=1, max_size=3),
                       st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=40),
    st.integers(1, 30),
    st.binary(max_size=3),
)
def test_values_read_in_place_decode_as_joined(specs: list, length: int, junk: bytes) -> None:
    """Values of an MGET reply, read where they lie in its buffer: the same series or errors as the values
    alone, whether a part is evenly spaced (read in place) or not (a value with other bytes before it)."""
    raws, gaps = [], []
    for ts_start, choices, damage, gap in specs:
        pairs = [(ts_start + 60 * i, choices[i % len(choices)]) for i in range(length)]
        raw = codec.encode(pairs)
        raws.append([raw, raw[:-1], raw + junk, junk][damage])
        gaps.append(0 if gap else 1)
    buffer, starts, views = reply_of(raws, gaps)
    in_place = same_as_alone(raws, views, (buffer, starts))
    joined = same_as_alone(raws)
    # The same rows of the group arrays, and the same sums, whichever way a part was read.
    assert [(one.row, one.value_sum) for one in in_place if isinstance(one, Series)] == [
        (one.row, one.value_sum) for one in joined if isinstance(one, Series)]


def test_evenly_spaced_values_are_read_in_place_and_others_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's part whose values follow one another at one stride is read from the reply's buffer, not
    joined; a part where one value sits elsewhere is joined. The rows are the same."""
    count = codec.GROUP_ROWS + 8
    raws = [codec.encode([(TS + 60 * i, float(k * i) + 0.25) for i in range(100)]) for k in range(count)]
    gaps = [0] * count
    gaps[codec.GROUP_ROWS + 3] = 5  # the second part is not evenly spaced
    buffer, starts, views = reply_of(raws, gaps)
    joins = []
    monkeypatch.setattr(codec, "_part_bytes", lambda *args, f=codec._part_bytes: joins.append(f(*args)) or joins[-1])
    series = codec.decode_many(views, [f"m{k}" for k in range(count)], (buffer, starts))
    assert [base is buffer for base, _, _ in joins] == [True, False]
    assert joins[0][1:] == (starts[0], starts[1] - starts[0])
    assert [one.values[-1] for one in series] == [float(k * 99) + 0.25 for k in range(count)]
    assert [one.row for one in series] == list(range(count))
