"""The Horizon value format: APPENDed datapoints and Roomba rewrites decode to the same series."""

from __future__ import annotations

import math

import msgpack
import pytest
import redis

from skyline_analyzer.codec import (
    array_header_length,
    decode,
    decode_pairs,
    encode,
    encode_as_roomba,
    encode_datapoint,
)
from skyline_analyzer.exceptions import SeriesFormatError

PAIRS = [(1700000000, 1), (1700000060.0, 2.5), (1700000120, -3)]


def test_round_trip_keeps_number_types() -> None:
    assert decode_pairs(encode(PAIRS)) == PAIRS
    series = decode(encode(PAIRS))
    assert series.values.tolist() == [1.0, 2.5, -3.0]
    assert series.last_value == -3 and type(series.last_value) is int
    assert type(decode(encode(PAIRS[:2])).last_timestamp) is float


@pytest.mark.parametrize(("count", "header"), [(15, 1), (16, 3), (65535, 3), (65536, 5)])
def test_roomba_rewrite_strips_the_array_header(count: int, header: int) -> None:
    pairs = [(1700000000 + i, float(i)) for i in range(count)]
    packed_list = msgpack.packb(pairs)
    assert array_header_length(count) == header
    assert len(packed_list) - len(encode_as_roomba(pairs)) == header
    assert encode_as_roomba(pairs) == encode(pairs)
    assert decode_pairs(encode_as_roomba(pairs)) == pairs


def test_appends_in_redis_decode_to_the_series(redis_conn: redis.Redis) -> None:
    for ts, value in PAIRS:
        redis_conn.append("metrics.a", encode_datapoint(ts, value))
    assert decode_pairs(redis_conn.get("metrics.a")) == PAIRS


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (encode(PAIRS)[:-3], "truncated msgpack value"),
        (b"\xc1" + encode(PAIRS), "corrupt msgpack value"),
        (encode([(1, "x")]), "datapoint 0 has a non-numeric value"),
        (encode([(1, 2), (2, None)]), "datapoint 1 has a non-numeric value"),
        (encode([(1, math.nan)]), "datapoint 0 has a non-finite value"),
        (encode([(1, 2)]) + msgpack.packb(7), "datapoint 1 is not a [timestamp, value] pair"),
    ],
)
def test_bad_values_raise_a_named_error(raw: bytes, message: str) -> None:
    with pytest.raises(SeriesFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(raw, "metrics.bad")
