"""Workers against a real Redis: exact bytes, skip list, MAX_RESOLUTION, mini namespace, draining, outages."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

import msgpack
import pytest
import redis

from skyline_analyzer import connections
from skyline_analyzer.codec import decode_pairs
from skyline_analyzer.horizon.counters import Counters
from skyline_analyzer.horizon.worker import Writer, run_worker, take_batch
from tests.support import wait_until

NOW = 1_700_000_000


def test_batched_appends_leave_the_bytes_of_one_append_per_datapoint(redis_conn, load_settings) -> None:
    writer = Writer(load_settings())
    chunk = [("a.b", (NOW - 120, 1)), ("c.d", (NOW - 60.0, 2.5)), ("a.b", (NOW - 60, 3.25)), ("a.b", (NOW, -4))]
    result = writer.write(redis_conn, chunk, NOW)
    assert result.written == 4
    for name in ("a.b", "c.d"):
        per_datapoint = b"".join(msgpack.packb(pair) for n, pair in chunk if n == name)
        assert redis_conn.get(f"metrics.{name}") == per_datapoint
    assert decode_pairs(redis_conn.get("metrics.a.b")) == [(NOW - 120, 1), (NOW - 60, 3.25), (NOW, -4)]
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.a.b", b"metrics.c.d"}
    writer.write(redis_conn, [("a.b", (NOW + 60, 5))], NOW)
    assert decode_pairs(redis_conn.get("metrics.a.b"))[-1] == (NOW + 60, 5), "later batches append"


def test_skip_list_and_do_not_skip_list(redis_conn, load_settings) -> None:
    writer = Writer(load_settings())
    chunk = [
        ("skyline.analyzer.host.some_metric", (NOW, 1)),  # SKIP_LIST by substring
        ("skyline.analyzer.host.run_time", (NOW, 2)),  # rescued: DO_NOT_SKIP_LIST by elements
        ("stats.skyline.analyzer", (NOW, 3)),  # no match: 'skyline.analyzer.' is not a substring
    ]
    result = writer.write(redis_conn, chunk, NOW)
    assert (result.written, result.skipped) == (2, 1)
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.skyline.analyzer.host.run_time",
                                                             b"metrics.stats.skyline.analyzer"}


def test_max_resolution_drops_old_datapoints_and_keeps_future_ones(redis_conn, load_settings) -> None:
    writer = Writer(load_settings(MAX_RESOLUTION=1000))
    chunk = [("m", (NOW - 1001, 1)), ("m", (NOW - 1000, 2)), ("m", (NOW + 5000, 3))]
    result = writer.write(redis_conn, chunk, NOW)
    assert (result.written, result.too_old) == (2, 1)
    assert decode_pairs(redis_conn.get("metrics.m")) == [(NOW - 1000, 2), (NOW + 5000, 3)]


def test_mini_namespace_only_when_oculus_host_is_set(redis_conn, load_settings) -> None:
    Writer(load_settings()).write(redis_conn, [("m", (NOW, 1))], NOW)
    assert redis_conn.keys("mini.*") == []
    redis_conn.flushall()
    Writer(load_settings(OCULUS_HOST="http://oculus.example")).write(redis_conn, [("m", (NOW, 1))], NOW)
    assert redis_conn.get("mini.m") == redis_conn.get("metrics.m") == msgpack.packb((NOW, 1))
    assert redis_conn.smembers("mini.unique_metrics") == {b"mini.m"}


def test_take_batch_drains_waiting_chunks_up_to_the_limit() -> None:
    work: queue.Queue = queue.Queue()
    for n in range(5):
        work.put([("m", (n, n))] * 10)
    assert len(take_batch(work, 0.1, limit=25)) == 30, "whole chunks, stopping once past the limit"
    assert len(take_batch(work, 0.1)) == 20
    with pytest.raises(queue.Empty):
        take_batch(work, 0.01)


def test_worker_writes_everything_queued_before_it_stops(redis_conn, load_settings) -> None:
    settings = load_settings()
    work: queue.Queue = queue.Queue()
    counters = Counters(1)
    stop = threading.Event()
    now = int(time.time())
    for n in range(50):
        work.put([(f"w.{n % 7}", (now - 100 + n, n)), ("skyline.mirage.x", (now, 0)), ("old", (now - 5000, 0))])
    stop.set()  # already asked to stop: it must still drain the queue
    thread = threading.Thread(target=run_worker, args=(0, settings, work, counters.row(0), stop, os.getppid()))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    total = sum(len(decode_pairs(redis_conn.get(f"metrics.w.{k}"))) for k in range(7))
    assert total == 50
    counts = counters.totals()
    assert (counts["worker.datapoints_written"], counts["worker.datapoints_skipped"],
            counts["worker.datapoints_too_old"]) == (50, 50, 50)


@pytest.mark.parametrize("noticed", ["at its PING", "when the write failed under it"])
def test_a_datapoint_queued_during_an_outage_is_written_once_redis_is_back(noticed, own_redis, load_settings,
                                                                           caplog) -> None:
    """Whether the worker notices the outage at its PING, or only when the connection fails under a write
    (it was waiting on its queue, past its PING), the batch is written once Redis is back: v1.2.8 lost it
    in the second case."""
    caplog.set_level(logging.INFO, logger="skyline_analyzer")
    server = own_redis()
    settings = load_settings(REDIS_SOCKET_PATH=server.socket_path)
    work: queue.Queue = queue.Queue()
    counters = Counters(1)
    stop = threading.Event()
    under_write = noticed != "at its PING"
    thread = threading.Thread(target=run_worker, args=(1, settings, work, counters.row(0), stop, os.getppid()),
                              kwargs={"poll": 5.0 if under_write else 0.1})
    thread.start()
    try:
        assert wait_until(lambda: "worker 1 started" in caplog.text, timeout=10)
        time.sleep(0.3)  # past the first PING
        server.stop()
        now = int(time.time())
        work.put([("survives.outage", (now, 1.0))])
        if under_write:
            assert wait_until(lambda: "(attempt 1)" in caplog.text, timeout=10)
        else:
            time.sleep(0.3)
        server.start()
        client = server.client()
        assert wait_until(lambda: client.get("metrics.survives.outage") is not None, timeout=15)
        assert client.get("metrics.survives.outage") == msgpack.packb((now, 1.0))
        client.close()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert counters.totals().get("worker.datapoints_failed", 0) == 0


def test_a_write_during_an_outage_raises_for_the_worker_to_count(own_redis, load_settings) -> None:
    server = own_redis()
    settings = load_settings(REDIS_SOCKET_PATH=server.socket_path)
    client = connections.connect(settings)
    server.stop()
    with pytest.raises(redis.ConnectionError):
        Writer(settings).write(client, [("m", (NOW, 1))], NOW)


def test_a_datapoint_that_cannot_be_written_drops_alone(redis_conn, load_settings) -> None:
    # The listeners refuse both; a worker must still not die on them, nor lose the batch.
    writer = Writer(load_settings())
    chunk = [("good.one", (NOW, 1)), ("lone\ud800surrogate", (NOW, 2)), ("huge", (NOW, 10**30)),
             ("good.two", (NOW, 3))]
    result = writer.write(redis_conn, chunk, NOW)
    assert (result.written, result.rejected) == (2, 2)
    assert "UnicodeEncodeError" in result.refused and "\\ud800" in result.refused
    assert redis_conn.smembers("metrics.unique_metrics") == {b"metrics.good.one", b"metrics.good.two"}


def test_the_skip_cache_is_bounded_by_bytes(load_settings) -> None:
    writer = Writer(load_settings(HORIZON_CACHE_BYTES=100_000))
    for n in range(300):
        writer.skips(f"name.{n}." + "x" * 10_000)
    assert writer.skip_cache.used <= 100_000
    assert 0 < len(writer.skip_cache) < 10
