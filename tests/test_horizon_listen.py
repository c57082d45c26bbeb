"""The listeners, served in threads of this process on loopback: several clients, bad input, chunking."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from skyline_analyzer import config
from skyline_analyzer.horizon import listen
from skyline_analyzer.horizon.stats import Counters
from tests.support import Touch, horizon_overrides, pickle_frame, wait_until


class Running:
    """One protocol's listener serving on a free loopback port until the test ends."""

    def __init__(self, protocol: str, settings: config.Settings, maxsize: int = 1000) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.counters = Counters(1)
        self.stopping = threading.Event()
        self.sock = listen.bind(protocol, settings)
        self.address = self.sock.getsockname()[:2]
        self.listener = listen.Listener(protocol, settings, [self.queue], self.counters.row(0), self.stopping)
        if protocol == "udp":
            target, args = listen.serve_udp, (self.sock, self.listener)
        else:
            handler = {"pickle": listen.serve_pickle_connection, "plaintext": listen.serve_plaintext_connection}
            target, args = listen.serve_tcp, (self.sock, self.listener, handler[protocol])
        self.thread = threading.Thread(target=target, args=args)
        self.thread.start()

    def datapoints(self, count: int, timeout: float = 5.0) -> list:
        """Chunks taken off the queue until ``count`` datapoints arrived (or the timeout)."""
        got: list = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            try:
                got.extend(self.queue.get(timeout=0.05))
            except queue.Empty:
                continue
        return got

    def counter(self, name: str) -> int:
        return self.counters.totals()[name]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def serve(load_settings: Callable[..., config.Settings]) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(protocol: str, maxsize: int = 1000, **overrides: object) -> Running:
        running = Running(protocol, load_settings(**horizon_overrides(**overrides)), maxsize)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def points(name: str, count: int, start: int = 1_700_000_000) -> list:
    return [(name, (start + 60 * i, float(i))) for i in range(count)]


def test_several_pickle_clients_at_once(serve) -> None:
    running = serve("pickle")
    clients = [socket.create_connection(running.address) for _ in range(5)]
    sent = []
    # Interleave: every client holds its connection open while the others send.
    for round_ in range(4):
        for n, client in enumerate(clients):
            batch = points(f"client.{n}", 30, start=1_700_000_000 + round_ * 10_000)
            client.sendall(pickle_frame(batch))
            sent.extend(batch)
    for client in clients:
        client.close()
    got = running.datapoints(len(sent))
    assert sorted(got) == sorted(sent)
    for n in range(5):
        mine = [dp for dp in got if dp[0] == f"client.{n}"]
        assert mine == [dp for dp in sent if dp[0] == f"client.{n}"], "one connection's order is kept"
    assert running.counter("listen.pickle_datapoints_received") == len(sent)


def test_reduce_payload_is_rejected_and_the_connection_keeps_serving(serve, tmp_path: Path) -> None:
    running = serve("pickle")
    marker = tmp_path / "ran"
    good = points("after.evil", 12)
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame([("before", (1, 2)), Touch(marker)]))
        client.sendall(pickle_frame(good))
    assert running.datapoints(len(good)) == good
    assert running.counter("listen.pickle_frames_rejected") == 1
    assert not marker.exists()


def test_truncated_frame_is_counted_and_the_next_client_served(serve) -> None:
    running = serve("pickle")
    whole = pickle_frame(points("lost", 5))
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("kept", 3)) + whole[: len(whole) // 2])
    assert running.datapoints(3) == points("kept", 3), "datapoints before the cut are flushed on close"
    wait_until(lambda: running.counter("listen.pickle_frames_rejected") >= 1, timeout=5, interval=0.02)
    assert running.counter("listen.pickle_frames_rejected") == 1
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("next", 2)))
    assert running.datapoints(2) == points("next", 2)


def test_oversized_length_prefix_closes_that_connection_unread(serve) -> None:
    running = serve("pickle", MAX_PICKLE_FRAME_BYTES=1000)
    with socket.create_connection(running.address) as client:
        client.sendall(struct.pack("!I", 2**31))
        client.settimeout(5)
        assert client.recv(1) == b"", "the listener closes the connection"
    assert running.counter("listen.pickle_frames_rejected") == 1
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("fine", 4)))
    assert running.datapoints(4) == points("fine", 4)


def test_bad_elements_of_a_frame_drop_alone(serve) -> None:
    running = serve("pickle")
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame([("ok", (1, 2)), ("bad", (1, "x")), ("bad2", 3), ("ok2", (2, 3))]))
    assert running.datapoints(2) == [("ok", (1, 2)), ("ok2", (2, 3))]
    assert running.counter("listen.pickle_datapoints_rejected") == 2
    assert running.counter("listen.pickle_frames_rejected") == 0


def test_a_quiet_clients_datapoints_are_flushed_on_a_timer(serve) -> None:
    running = serve("pickle")  # CHUNK_SIZE 10, CHUNK_FLUSH_INTERVAL 0.2
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("quiet", 3)))
        started = time.monotonic()
        assert running.datapoints(3, timeout=3) == points("quiet", 3), "flushed while the connection is open"
        assert time.monotonic() - started < 2


def test_chunks_queue_once_over_chunk_size(serve) -> None:
    running = serve("pickle", CHUNK_FLUSH_INTERVAL=30.0)
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("small", 10)))
        time.sleep(0.3)
        assert running.queue.empty(), "10 datapoints is not more than CHUNK_SIZE"
        client.sendall(pickle_frame(points("small", 1, start=1)))
        assert len(running.datapoints(11, timeout=3)) == 11


def test_a_full_queue_drops_and_counts_datapoints(serve) -> None:
    running = serve("pickle", maxsize=1)
    with socket.create_connection(running.address) as client:
        for n in range(3):
            client.sendall(pickle_frame(points(f"chunk.{n}", 20)))
    wait_until(lambda: running.counter("listen.pickle_chunks_dropped") >= 40, timeout=5, interval=0.02)
    assert running.counter("listen.pickle_chunks_dropped") == 40
    assert running.queue.get_nowait() == points("chunk.0", 20)


def test_udp_bad_datagrams_are_dropped_and_the_listener_keeps_going(serve) -> None:
    running = serve("udp")
    long_name = "long." + "x" * 2000  # over the original's 1024-byte read, which killed its listener
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for data in (b"\xc1garbage", msgpack.packb(("a", [1, 2]))[:-1], msgpack.packb(("connect.test", 1))):
            sender.sendto(data, running.address)
        sender.sendto(msgpack.packb((long_name, [1_700_000_000, 1.5])), running.address)
        sender.sendto(msgpack.packb(("after.garbage", [1_700_000_060, 2])), running.address)
    assert running.datapoints(2) == [(long_name, (1_700_000_000, 1.5)), ("after.garbage", (1_700_000_060, 2))]
    assert running.counter("listen.udp_frames_rejected") == 3
    assert running.counter("listen.udp_datapoints_received") == 2


def test_plaintext_lines_bad_lines_and_a_last_line_without_newline(serve) -> None:
    running = serve("plaintext")
    with socket.create_connection(running.address) as client:
        client.sendall(b"a.b 1 1700000000\r\nnot a number line\n\n")
        client.sendall(b"x" * (listen.MAX_LINE_BYTES + 10))  # over-long line: dropped up to its newline
        client.sendall(b" 1 2\nc.d 2.5 1700000060\ne.f 3 1700000120")
    assert running.datapoints(3) == [("a.b", (1_700_000_000, 1)), ("c.d", (1_700_000_060, 2.5)),
                                     ("e.f", (1_700_000_120, 3))]
    assert running.counter("listen.plaintext_frames_rejected") == 2


def test_several_plaintext_clients_at_once(serve) -> None:
    running = serve("plaintext")
    clients = [socket.create_connection(running.address) for _ in range(4)]
    for n, client in enumerate(clients):
        client.sendall(f"c.{n} {n} 1700000000\n".encode())
    for client in clients:
        client.close()
    assert sorted(running.datapoints(4)) == [(f"c.{n}", (1_700_000_000, n)) for n in range(4)]


def test_each_metric_goes_to_one_worker_queue_in_order() -> None:
    queues: list[queue.Queue] = [queue.Queue(), queue.Queue()]
    counters = Counters(1)
    chunker = listen.Chunker(queues, "pickle", chunk_size=10, flush_interval=60.0, counters=counters.row(0))
    sent = [(f"metric.{n % 9}", (1_700_000_000 + n, float(n))) for n in range(500)]
    for start in range(0, len(sent), 37):
        chunker.extend(sent[start:start + 37])
    chunker.flush()
    received = []
    for index, work in enumerate(queues):
        mine = [dp for chunk in list(work.queue) for dp in chunk]
        assert {listen.shard(name, 2) for name, _ in mine} == {index}
        assert all(len(chunk) > 10 for chunk in list(work.queue)[:-1]), "chunks go when over CHUNK_SIZE"
        received.extend(mine)
        for name in {name for name, _ in mine}:
            assert [dp for dp in mine if dp[0] == name] == [dp for dp in sent if dp[0] == name]
    assert sorted(received) == sorted(sent)
    assert all(queues), "both queues are used"
    assert counters.totals()["listen.pickle_datapoints_received"] == 500
