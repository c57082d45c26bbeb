"""Roomba's fast path stores exactly what the reference path stores, and keeps every concurrent APPEND.

The reference is the v1 decision (``decode_pairs``, ``trim``, ``encode_as_roomba``) and the v1 loop
(``Vacuum.run_per_key`` with ``fast=False``); the fast path is ``suffix.kept_from`` and the batched
``Vacuum.run``. Values come in every shape: sorted or not, duplicated timestamps, every msgpack number
type (canonical or not), NaN, bare numbers, corrupt and random bytes.
"""

from __future__ import annotations

import multiprocessing
import struct

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyline_analyzer.codec import decode_pairs, encode, encode_as_roomba
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.horizon.roomba import FIRST_BATCH_KEYS, Vacuum, VacuumResult, trim
from skyline_analyzer.horizon.suffix import kept_from

NOW = 1_700_000_000
WINDOW = 87_000

ints = st.sampled_from([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 + 1, 2**64 - 1, -1, -32,
                        -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]) | st.integers(-(2**63),
                                                                                                       2**64 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
numbers = ints | floats | st.integers(-40, 300)
bases = st.sampled_from([NOW - WINDOW, 0, 100, 70_000, 2**32 - 100, 2**32 + 5, -5_000, NOW - WINDOW + 0.25])
steps = st.sampled_from([60, 60, 60, 1, 0, 0.5, -60])


def pack(x: int | float, wide: bool) -> bytes:
    """``x`` as msgpack, or in a wider type than msgpack chooses (an int as int64/uint64, a float as float32)."""
    if not wide:
        return msgpack.packb(x)
    if isinstance(x, float):
        return b"\xca" + struct.pack(">f", x) if abs(x) < 3e38 or x != x else msgpack.packb(x)
    return b"\xd3" + struct.pack(">q", x) if x < 2**63 else msgpack.packb(x)


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """A value of any shape Roomba may read."""
    shape = draw(st.sampled_from(["horizon", "horizon", "any", "wide", "mutated", "truncated", "bytes", "scalar"]))
    if shape == "bytes":
        return draw(st.binary(max_size=60))
    if shape == "scalar":
        return msgpack.packb(draw(numbers))
    count = draw(st.integers(1, 25))
    timestamps = [draw(bases)]
    for step in draw(st.lists(steps, min_size=count - 1, max_size=count - 1)):
        timestamps.append(timestamps[-1] + step)
    if shape == "horizon":
        # What Horizon writes: ascending int or float timestamps, float or int values.
        kind = draw(st.sampled_from([int, float]))
        pairs = [(kind(t), draw(floats | st.integers(-40, 300))) for t in sorted(timestamps)]
    else:
        pairs = [(t, draw(numbers)) for t in timestamps]
    if shape == "wide":
        return b"".join(b"\x92" + pack(t, draw(st.booleans())) + pack(v, draw(st.booleans())) for t, v in pairs)
    raw = encode(pairs)
    if shape == "mutated":
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if shape == "truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    return raw


def cutoffs_for(raw: bytes) -> list[float]:
    """Cutoffs around the value's own timestamps (each one, just after it), and a few others."""
    found: list[float] = [NOW - WINDOW, 2**60 + 1]
    try:
        pairs = decode_pairs(raw)
    except SeriesFormatError:
        return found
    for pair in pairs[:6] + pairs[-3:]:
        if isinstance(pair, tuple) and pair and isinstance(pair[0], (int, float)) and not isinstance(pair[0], bool):
            found += [pair[0], pair[0] + 0.5, pair[0] - 1]
    return found


def reference_store(raw: bytes, cutoff: float) -> tuple[bytes | None, int]:
    """What v1 stores (None: left as it is; b"": deleted) and the datapoints it removes."""
    try:
        kept, removed = trim(decode_pairs(raw), cutoff)
    except (SeriesFormatError, TypeError, ValueError):
        return b"", 0
    if raw and kept is None:
        return None, 0
    new_value = encode_as_roomba(kept) if kept else b""
    return (None if raw and new_value == raw else new_value), removed


@settings(max_examples=800, deadline=None)
@given(values())
def test_the_kept_suffix_is_byte_for_byte_what_the_reference_stores(raw: bytes) -> None:
    for cutoff in cutoffs_for(raw):
        found = kept_from(raw, cutoff)
        if found is None:
            continue
        offset, removed = found
        stored, reference_removed = reference_store(raw, cutoff)
        assert (None if offset == 0 else raw[offset:]) == stored
        assert removed == reference_removed


@pytest.mark.parametrize("pairs", [
    [(NOW - 120, 1.5), (NOW - 60, 2.5), (NOW, -3.25)],  # Horizon: int timestamps, float values
    [(NOW - 120.5, 1.0), (NOW - 60.5, 2.0)],  # float timestamps
    [(NOW - 120, 5), (NOW - 60, 200), (NOW, 70_000), (NOW + 60, -7), (NOW + 120, -1_000)],  # ints of every width
])
def test_what_horizon_writes_takes_the_fast_path(pairs) -> None:
    raw = encode(pairs)
    assert kept_from(raw, NOW - 90) == (len(encode(pairs[:1])), 1)
    assert kept_from(raw, NOW - 1_000) == (0, 0)
    assert kept_from(raw, NOW + 1_000) == (len(raw), len(pairs))


@pytest.mark.parametrize("raw", [
    encode([(NOW, 1.0), (NOW - 60, 2.0)]),  # unsorted
    encode([(NOW - 60, 1.0), (NOW - 60, 2.0)]),  # a duplicated timestamp
    encode([(NOW - 60, 1.0), (float(NOW - 60), 2.0)]),  # the same timestamp as an int and a float
    b"\x92\xce" + (NOW - 60).to_bytes(4, "big") + b"\xca" + struct.pack(">f", 1.0),  # a float32 value
    b"\x92\xd3" + (NOW - 60).to_bytes(8, "big") + msgpack.packb(1.0),  # an int64 timestamp
    b"\x92\xce" + (NOW - 60).to_bytes(4, "big") + b"\xcc\x05",  # 5 as a uint8
    encode([(NOW - 60, float("nan"))]),
    encode([(2**53 + 1, 1.0), (2**53 + 3, 1.0)]),  # timestamps float64 cannot hold
    msgpack.packb(NOW),  # a bare number
    b"\x92\xce\x00",  # truncated
])
def test_what_the_fast_path_cannot_guarantee_goes_to_the_reference(raw: bytes) -> None:
    assert kept_from(raw, NOW - 90) is None


def copies(conn, raws: list[bytes | None]) -> list[list[bytes]]:
    """The same keys under ``a.`` and ``b.`` (None: a key that is not a string), in their sets."""
    made = []
    for namespace in ("a.", "b."):
        names = [f"{namespace}m{i}".encode() for i in range(len(raws))]
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                conn.sadd(name, "x")
            else:
                conn.set(name, raw)
        conn.sadd(f"{namespace}unique_metrics", *names, f"{namespace}missing")
        made.append([*names, f"{namespace}missing".encode()])
    return made


def assert_same_store(conn, reference: list[bytes], fast: list[bytes]) -> None:
    for a, b in zip(reference, fast, strict=True):
        assert conn.type(a) == conn.type(b)
        if conn.type(a) == b"string":
            assert conn.get(a) == conn.get(b)
    stripped = [{m[2:] for m in conn.smembers(f"{ns}unique_metrics")} for ns in ("a.", "b.")]
    assert stripped[0] == stripped[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values(), min_size=1, max_size=12), st.sampled_from([NOW, NOW + 0.5, NOW + 60_000]))
def test_a_batched_vacuum_stores_what_the_v1_loop_stores(redis_conn, raws: list[bytes], now: float) -> None:
    redis_conn.flushall()
    reference, fast = copies(redis_conn, [*raws, None])
    want = Vacuum(redis_conn, "a.", WINDOW, fast=False).run_per_key(reference, now=now)
    got = Vacuum(redis_conn, "b.", WINDOW).run(fast, now=now)
    assert got == want
    assert_same_store(redis_conn, reference, fast)


def test_small_batches_read_one_key_at_a_time_and_store_the_same(redis_conn) -> None:
    raws = [encode([(NOW - WINDOW - 60 + 60 * i + n, float(n)) for i in range(30)]) for n in range(40)]
    reference, fast = copies(redis_conn, raws)
    redis_conn.config_resetstat()
    # Values of about 330 bytes in 400-byte batches: after the first read, one key per MGET.
    got = Vacuum(redis_conn, "b.", WINDOW, batch_bytes=400).run(fast, now=NOW)
    assert redis_conn.info("commandstats")["cmdstat_mget"]["calls"] == 1 + len(fast) - FIRST_BATCH_KEYS
    assert got == Vacuum(redis_conn, "a.", WINDOW, fast=False).run_per_key(reference, now=NOW)
    assert_same_store(redis_conn, reference, fast)


def test_a_key_with_nothing_to_drop_is_not_written(redis_conn) -> None:
    clean = {f"metrics.m{n}": encode([(NOW - 60 * i, float(i)) for i in range(100, -1, -1)]) for n in range(50)}
    redis_conn.mset(clean)
    redis_conn.config_resetstat()
    result = Vacuum(redis_conn, "metrics.", WINDOW).run([k.encode() for k in clean], now=NOW)
    stats = redis_conn.info("commandstats")
    assert not any(name in stats for name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_set", "cmdstat_del"))
    assert (result.active, result.trimmed) == (50, 0)
    assert redis_conn.mget(list(clean)) == list(clean.values())


def test_a_trim_sends_no_datapoint_back(redis_conn) -> None:
    pairs = [(NOW - WINDOW - 60 + 60 * i, float(i)) for i in range(1_452)]
    redis_conn.set("metrics.m", encode(pairs))
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    redis_conn.set("metrics.warm", encode(pairs))
    cleaner.run([b"metrics.warm"], now=NOW)  # the script is loaded
    redis_conn.config_resetstat()
    cleaner.run([b"metrics.m"], now=NOW)
    stats = redis_conn.info("commandstats")
    assert redis_conn.get("metrics.m") == encode_as_roomba(pairs[2:])
    assert stats["cmdstat_evalsha"]["calls"] == 1 and "cmdstat_eval" not in stats
    # The write's arguments: the length read, 32 + 32 fingerprint bytes, an offset, no new value.
    assert redis_conn.info("stats")["total_net_input_bytes"] < 1_000


def test_a_deleted_key_leaves_the_set_and_deleting_again_is_harmless(redis_conn) -> None:
    redis_conn.set("metrics.old", encode([(NOW - WINDOW - 120, 1.0), (NOW - WINDOW - 60, 2.0)]))
    redis_conn.sadd("metrics.unique_metrics", "metrics.old", "metrics.live")
    redis_conn.set("metrics.live", encode([(NOW, 1.0)]))
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    first = cleaner.run([b"metrics.old", b"metrics.live"], now=NOW)
    assert not redis_conn.exists("metrics.old")
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.live"}
    again = cleaner.run([b"metrics.old"], now=NOW)
    assert (first.euthanized, again.euthanized, again.blocked) == (1, 1, 0)
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.live"}


def test_a_fast_delete_keeps_what_was_appended_since_the_read(redis_conn) -> None:
    old = encode([(NOW - WINDOW - 120, 1.0), (NOW - WINDOW - 60, 2.0)])
    redis_conn.set("metrics.k", old)
    redis_conn.sadd("metrics.unique_metrics", "metrics.k")
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    write = cleaner.plan(b"metrics.k", old, NOW - WINDOW)
    assert write is not None and (write.offset, write.prefix) == (len(old), b""), "the fast path's delete"
    redis_conn.append("metrics.k", msgpack.packb((NOW, 5.0)))
    assert cleaner.store([write]) == [2]
    assert redis_conn.get("metrics.k") == msgpack.packb((NOW, 5.0))
    assert redis_conn.sismember("metrics.unique_metrics", "metrics.k")


def test_a_key_written_again_between_the_delete_and_the_srem_stays_in_the_set(redis_conn) -> None:
    old = encode([(NOW - WINDOW - 120, 1.0)])
    redis_conn.set("metrics.k", old)
    redis_conn.set("metrics.gone", old)
    redis_conn.sadd("metrics.unique_metrics", "metrics.k", "metrics.gone")
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    writes = [cleaner.plan(key, old, NOW - WINDOW) for key in (b"metrics.k", b"metrics.gone")]
    outcomes = [cleaner._script(keys=[w.key], args=w.args()) for w in writes]  # the deletes, without the SREM
    assert outcomes == [0, 0] and not redis_conn.exists("metrics.k")
    # A Horizon worker re-creates the key and sends its SADD (a no-op: still a member) before Roomba's SREM.
    redis_conn.append("metrics.k", msgpack.packb((NOW, 5.0)))
    redis_conn.sadd("metrics.unique_metrics", "metrics.k")
    cleaner.forget([b"metrics.k", b"metrics.gone"])
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.k"}


def test_a_key_that_changed_type_under_the_write_is_retried_and_zapped(redis_conn) -> None:
    raw = encode([(NOW - WINDOW - 60, 1.0), (NOW, 2.0)])
    redis_conn.set("metrics.k", raw)
    redis_conn.sadd("metrics.unique_metrics", "metrics.k")
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    write = cleaner.plan(b"metrics.k", raw, NOW - WINDOW)
    redis_conn.delete("metrics.k")
    redis_conn.sadd("metrics.k", "x")
    assert cleaner.store([write]) == [-1]
    result = cleaner.run([b"metrics.k"], now=NOW)
    assert (result.euthanized, redis_conn.exists("metrics.k")) == (1, 0)
    assert not redis_conn.sismember("metrics.unique_metrics", "metrics.k")


def test_a_flushed_script_cache_is_reloaded(redis_conn) -> None:
    raw = encode([(NOW - WINDOW - 60, 1.0), (NOW, 2.0)])
    redis_conn.set("metrics.k", raw)
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    redis_conn.script_flush()
    assert cleaner.run([b"metrics.k"], now=NOW).trimmed == 1
    assert redis_conn.get("metrics.k") == encode([(NOW, 2.0)])


def test_concurrent_appends_during_fast_trims_lose_nothing(redis_conn, redis_server) -> None:
    start = NOW - WINDOW
    initial = [(start + i, float(i % 97)) for i in range(20_000)]
    appended = [(start + 20_000 + i, 3.0) for i in range(4_000)]
    redis_conn.set("metrics.busy", encode(initial))
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    write = cleaner.plan(b"metrics.busy", redis_conn.get("metrics.busy"), start + 10)
    assert write is not None and write.prefix == b"", "the fast path trims this key"

    def append_all() -> None:
        client = redis_server.client()
        for pair in appended:
            client.append("metrics.busy", msgpack.packb(pair))
        client.close()

    # Another process, as a Horizon worker is; every pass moves the cutoff on by 3 datapoints.
    appender = multiprocessing.get_context("fork").Process(target=append_all)
    total = VacuumResult()
    cutoff = start
    appender.start()
    while appender.is_alive() and cutoff < start + 19_000:
        cutoff += 3
        result = cleaner.run([b"metrics.busy"], now=cutoff + WINDOW)
        total.concurrent_appends += result.concurrent_appends
        total.trimmed += result.trimmed
    appender.join()
    assert appender.exitcode == 0
    cleaner.run([b"metrics.busy"], now=cutoff + WINDOW)
    expected = [pair for pair in initial + appended if pair[0] > cutoff]
    assert redis_conn.get("metrics.busy") == encode(expected)
    assert total.trimmed >= 2 and total.concurrent_appends >= 1, "the race was exercised"
