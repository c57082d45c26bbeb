"""Roomba against a real Redis: the trim rules, purging, zapping, and no datapoint lost to a concurrent APPEND."""

from __future__ import annotations

import multiprocessing
import threading
import time

import msgpack
import pytest

from skyline_analyzer.codec import decode_pairs, encode, encode_as_roomba
from skyline_analyzer.horizon import roomba
from skyline_analyzer.horizon.roomba import Vacuum, VacuumResult, trim, vacuum
from skyline_analyzer.slices import assigned_slice

NOW = 1_700_000_000
WINDOW = 87_000  # FULL_DURATION + ROOMBA_GRACE_TIME
CUTOFF = NOW - WINDOW


def test_trim_sorts_keeps_the_window_and_the_smallest_value_of_a_duplicate() -> None:
    pairs = [(NOW, 5.0), (CUTOFF, 1.0), (NOW - 60, 2.0), (NOW, 3.0), (CUTOFF - 60, 0.0), (NOW - 60, 9.0)]
    kept, removed = trim(pairs, CUTOFF)
    # Equal timestamps keep the smallest value (PRESERVE H4), not the last received; ts == cutoff goes.
    assert kept == [(NOW - 60, 2.0), (NOW, 3.0)]
    assert removed == 4


def test_trim_treats_int_and_float_timestamps_as_equal() -> None:
    assert trim([(NOW, 2), (float(NOW), 1.5)], CUTOFF)[0] == [(float(NOW), 1.5)]


def test_trim_purges_a_series_whose_newest_datapoint_is_old() -> None:
    assert trim([(CUTOFF - 1, 1), (CUTOFF - 120, 2)], CUTOFF) == ([], 2)


def test_trim_leaves_empty_and_recent_scalar_values_and_purges_an_old_scalar() -> None:
    assert trim([], CUTOFF) == (None, 0)
    assert trim([NOW], CUTOFF) == (None, 0)
    assert trim([CUTOFF - 5], CUTOFF) == ([], 1)


@pytest.mark.parametrize("pairs", [[(NOW, "x")], [(NOW, 1), "junk"], [(NOW, 1, 2)], ["text"], [(NOW, None)]])
def test_trim_refuses_what_is_not_numeric_pairs(pairs) -> None:
    with pytest.raises((TypeError, ValueError)):
        trim(pairs, CUTOFF)


def run_vacuum(conn, keys_: list[bytes]) -> VacuumResult:
    return Vacuum(conn, "metrics.", WINDOW).run(keys_, now=NOW)


def test_vacuum_rewrites_trims_purges_and_zaps(redis_conn) -> None:
    redis_conn.set("metrics.live", encode([(NOW, 3.0), (NOW - 60, 2.0), (NOW, 1.0), (CUTOFF - 10, 0.0)]))
    redis_conn.set("metrics.dead", encode([(CUTOFF - 100, 1.0), (CUTOFF - 50, 2.0)]))
    redis_conn.set("metrics.corrupt", b"\xc1\xc1 not msgpack")
    redis_conn.sadd("metrics.wrongtype", "a")
    members = [b"metrics.live", b"metrics.dead", b"metrics.corrupt", b"metrics.missing", b"metrics.wrongtype"]
    redis_conn.sadd("metrics.unique_metrics", *members)
    result = run_vacuum(redis_conn, members)
    assert redis_conn.get("metrics.live") == encode_as_roomba([(NOW - 60, 2.0), (NOW, 1.0)])
    for gone in members[1:]:
        assert not redis_conn.exists(gone)
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.live"}
    assert (result.keys, result.trimmed, result.euthanized, result.active, result.blocked) == (5, 1, 4, 1, 0)


def test_a_clean_series_is_left_as_it_is(redis_conn) -> None:
    clean = encode_as_roomba([(NOW - 60, 1.0), (NOW, 2.0)])
    redis_conn.set("metrics.clean", clean)
    result = run_vacuum(redis_conn, [b"metrics.clean"])
    assert redis_conn.get("metrics.clean") == clean
    assert (result.trimmed, result.active) == (0, 1)


def test_roomba_format_over_fifteen_and_over_65535_datapoints_decodes(redis_conn) -> None:
    for count in (16, 70_000):
        pairs = [(NOW - WINDOW + 1 + i, float(i)) for i in range(count)]
        redis_conn.set("metrics.big", encode(reversed(pairs)))
        run_vacuum(redis_conn, [b"metrics.big"])
        assert decode_pairs(redis_conn.get("metrics.big")) == pairs


def test_write_back_refuses_when_what_was_read_changed(redis_conn) -> None:
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    raw = encode([(NOW, 1.0), (NOW - 60, 2.0)])
    redis_conn.set("metrics.k", raw)
    rewritten = encode([(NOW, 7.0), (NOW - 60, 2.0)])  # same length, different bytes: another rewrite
    redis_conn.set("metrics.k", rewritten)
    assert cleaner.write_back(b"metrics.k", raw, b"x") == -1
    redis_conn.set("metrics.k", raw[:-3])  # shorter than what was read
    assert cleaner.write_back(b"metrics.k", raw, b"x") == -1
    assert redis_conn.get("metrics.k") == raw[:-3]


def test_write_back_keeps_what_was_appended_after_the_read(redis_conn) -> None:
    cleaner = Vacuum(redis_conn, "metrics.", WINDOW)
    raw = encode([(CUTOFF - 60, 1.0)])
    redis_conn.set("metrics.k", raw)
    redis_conn.sadd("metrics.unique_metrics", "metrics.k")
    redis_conn.append("metrics.k", msgpack.packb((NOW, 5.0)))
    assert cleaner.write_back(b"metrics.k", raw, b"") == 2, "a purge with an append since keeps the append"
    assert decode_pairs(redis_conn.get("metrics.k")) == [(NOW, 5.0)]
    assert redis_conn.sismember("metrics.unique_metrics", "metrics.k")


def test_concurrent_appends_during_trims_lose_nothing(redis_conn, redis_server) -> None:
    old = [(CUTOFF - 1 - i, 1.0) for i in range(5_000)]
    recent = [(NOW - 80_000 + i, 2.0) for i in range(15_000)]
    redis_conn.set("metrics.busy", encode(old + recent))
    # Newest first, so every pass finds the value unsorted and rewrites it while the appends go on.
    appended = [(NOW + 4_000 - i, 3.0) for i in range(4_000)]
    before = len(decode_pairs(redis_conn.get("metrics.busy")))

    def append_all() -> None:
        client = redis_server.client()
        for pair in appended:
            client.append("metrics.busy", msgpack.packb(pair))
        client.close()

    # Another process, as a Horizon worker is: it keeps appending while this one decodes and sorts.
    appender = multiprocessing.get_context("fork").Process(target=append_all)
    total = VacuumResult()
    appender.start()
    while appender.is_alive():
        result = run_vacuum(redis_conn, [b"metrics.busy"])
        total.concurrent_appends += result.concurrent_appends
        total.trimmed += result.trimmed
    appender.join()
    assert appender.exitcode == 0
    run_vacuum(redis_conn, [b"metrics.busy"])
    after = decode_pairs(redis_conn.get("metrics.busy"))
    assert before == 20_000
    assert len(after) == before - len(old) + len(appended)
    assert after == recent + sorted(appended)
    assert total.trimmed >= 2 and total.concurrent_appends >= 1, "the race was exercised"


def test_assigned_splits_keys_between_processes_without_gaps() -> None:
    members = [f"metrics.{n:02d}".encode() for n in range(10)]
    shares = [assigned_slice(sorted(members), i, 3) for i in (1, 2, 3)]
    assert [len(s) for s in shares] == [4, 4, 2]
    assert sorted(key for share in shares for key in share) == sorted(members)


def test_vacuum_reads_the_namespace_set(redis_conn, load_settings) -> None:
    settings = load_settings(ROOMBA_PROCESSES=2)
    for n in range(6):
        redis_conn.set(f"metrics.m{n}", encode([(NOW, 1.0), (CUTOFF - 1, 1.0)]))
        redis_conn.sadd("metrics.unique_metrics", f"metrics.m{n}")
    results = [vacuum(i, "metrics.", WINDOW, settings, now=NOW, conn=redis_conn) for i in (1, 2)]
    assert [r.keys for r in results] == [3, 3]
    assert all(redis_conn.get(f"metrics.m{n}") == encode_as_roomba([(NOW, 1.0)]) for n in range(6))


def test_a_pass_forks_vacuums_for_both_namespaces(redis_conn, load_settings) -> None:
    settings = load_settings(OCULUS_HOST="http://oculus.example", MINI_DURATION=3600,
                             ROOMBA_GRACE_TIME=600, FULL_DURATION=86400)
    now = int(time.time())
    redis_conn.set("metrics.m", encode([(now, 2.0), (now, 1.0), (now - 90_000, 1.0)]))
    redis_conn.sadd("metrics.unique_metrics", "metrics.m")
    redis_conn.set("mini.m", encode([(now, 2.0), (now - 5_000, 1.0)]))
    redis_conn.sadd("mini.unique_metrics", "mini.m")
    roomba.roomba_pass(settings, multiprocessing.get_context("fork"), threading.Event())
    assert decode_pairs(redis_conn.get("metrics.m")) == [(now, 1.0)]
    assert decode_pairs(redis_conn.get("mini.m")) == [(now, 2.0)]
