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
from skyline_analyzer.horizon import listener
from skyline_analyzer.horizon.chunker import Chunker, shard
from skyline_analyzer.horizon.counters import Counters
from skyline_analyzer.horizon.plaintext_receiver import MAX_LINE_BYTES
from tests.support import Touch, horizon_overrides, pickle_frame, wait_until


class Running:
    """One protocol's listener serving on a free loopback port until the test ends."""

    def __init__(self, protocol: str, settings: config.Settings, maxsize: int = 1000) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.counters = Counters(1)
        self.stopping = threading.Event()
        self.sock = listener.bind(protocol, settings)
        self.address = self.sock.getsockname()[:2]
        self.server = listener.make_server(protocol, self.sock, settings, [self.queue], self.counters.row(0),
                                           self.stopping)
        self.thread = threading.Thread(target=self.server.serve)
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
    long_name = "long." + "x" * 1015  # a datagram over the original's 1024-byte read, which killed its listener
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for data in (b"\xc1garbage", msgpack.packb(("a", [1, 2]))[:-1], msgpack.packb(("connect.test", 1)),
                     msgpack.packb(("x" * 2000, [1, 2])), b"\x91" * 1000 + msgpack.packb(("a", [1, 2]))):
            sender.sendto(data, running.address)
        sender.sendto(msgpack.packb((long_name, [1_700_000_000, 1.5])), running.address)
        sender.sendto(msgpack.packb(("after.garbage", [1_700_000_060, 2])), running.address)
    assert running.datapoints(2) == [(long_name, (1_700_000_000, 1.5)), ("after.garbage", (1_700_000_060, 2))]
    assert running.counter("listen.udp_frames_rejected") == 5
    assert running.counter("listen.udp_datapoints_received") == 2
    assert running.counter("listen.rejected.msgpack_unreadable") == 2
    assert running.counter("listen.rejected.not_a_datapoint") == 2
    assert running.counter("listen.rejected.name_too_long") == 1


def test_plaintext_lines_bad_lines_and_a_last_line_without_newline(serve) -> None:
    running = serve("plaintext")
    with socket.create_connection(running.address) as client:
        client.sendall(b"a.b 1 1700000000\r\nnot a number line\n\n")
        client.sendall(b"x" * (MAX_LINE_BYTES + 10))  # over-long line: dropped up to its newline
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
    chunker = Chunker(queues, "pickle", chunk_size=10, flush_interval=60.0, counters=counters.row(0))
    sent = [(f"metric.{n % 9}", (1_700_000_000 + n, float(n))) for n in range(500)]
    for start in range(0, len(sent), 37):
        chunker.extend(sent[start:start + 37])
    chunker.flush()
    received = []
    for index, work in enumerate(queues):
        mine = [dp for chunk in list(work.queue) for dp in chunk]
        assert {shard(name, 2) for name, _ in mine} == {index}
        assert all(len(chunk) > 10 for chunk in list(work.queue)[:-1]), "chunks go when over CHUNK_SIZE"
        received.extend(mine)
        for name in {name for name, _ in mine}:
            assert [dp for dp in mine if dp[0] == name] == [dp for dp in sent if dp[0] == name]
    assert sorted(received) == sorted(sent)
    assert all(queues), "both queues are used"
    assert counters.totals()["listen.pickle_datapoints_received"] == 500


def closed_by_server(client: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closed ``client`` within ``timeout`` (it never sends anything)."""
    client.settimeout(timeout)
    try:
        return client.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_one_bad_line_drops_alone_among_good_ones_in_the_same_read(serve) -> None:
    running = serve("plaintext")
    with socket.create_connection(running.address) as client:
        client.sendall(b"a.b 1 1700000000\nhuge " + b"9" * 5000 + b" 1700000000\nc.d 2 1700000060\n")
    assert running.datapoints(2) == [("a.b", (1_700_000_000, 1)), ("c.d", (1_700_000_060, 2))]
    assert running.counter("listen.plaintext_frames_rejected") == 1
    assert running.counter("listen.rejected.not_a_number") == 1


def test_a_silent_connection_is_closed_after_the_idle_timeout(serve) -> None:
    running = serve("pickle", HORIZON_IDLE_TIMEOUT=0.5)
    with socket.create_connection(running.address) as client:
        client.sendall(pickle_frame(points("before.silence", 2)))
        assert running.datapoints(2) == points("before.silence", 2)
        assert closed_by_server(client)
    assert running.counter("listen.pickle_connections_timed_out") == 1


def test_past_the_connection_limit_a_quiet_connection_makes_room(serve) -> None:
    running = serve("pickle", HORIZON_MAX_CONNECTIONS=3)
    idle = [socket.create_connection(running.address) for _ in range(3)]
    try:
        time.sleep(0.3)  # accepted, in this order
        with socket.create_connection(running.address) as client:
            client.sendall(pickle_frame(points("newcomer", 3)))
            assert running.datapoints(3) == points("newcomer", 3)
        assert closed_by_server(idle[0]), "the connection quiet the longest made room"
        assert not closed_by_server(idle[1], timeout=0.2)
        assert running.counter("listen.pickle_connections_evicted") == 1
    finally:
        for sock in idle:
            sock.close()


def test_past_the_connection_limit_working_clients_keep_their_connections(serve) -> None:
    running = serve("plaintext", HORIZON_MAX_CONNECTIONS=2)
    workers = [socket.create_connection(running.address) for _ in range(2)]
    try:
        for n, sock in enumerate(workers):
            sock.sendall(f"worker.{n} 1 1700000000\n".encode())
        assert len(running.datapoints(2)) == 2
        with socket.create_connection(running.address) as newcomer:
            assert closed_by_server(newcomer), "refused: both connections delivered and are not idle"
        assert running.counter("listen.plaintext_connections_refused") == 1
        workers[0].sendall(b"worker.0 2 1700000060\n")
        assert running.datapoints(1) == [("worker.0", (1_700_000_060, 2))]
    finally:
        for sock in workers:
            sock.close()


def test_partial_frames_past_the_buffer_limit_close_the_largest(serve) -> None:
    running = serve("pickle", MAX_PICKLE_FRAME_BYTES=10_000, HORIZON_MAX_BUFFERED_BYTES=25_000)
    clients = [socket.create_connection(running.address) for _ in range(4)]
    try:
        for client, size in zip(clients, (6000, 7000, 8000, 9000), strict=True):
            client.sendall(struct.pack("!I", 10_000) + b"\x80" * size)
        assert closed_by_server(clients[3]), "whatever the order of the reads, the 9000 bytes are the most"
        assert not any(closed_by_server(client, timeout=0.2) for client in clients[:3])
        with socket.create_connection(running.address) as real:
            real.sendall(pickle_frame(points("still.served", 2)))
            assert running.datapoints(2) == points("still.served", 2)
    finally:
        for client in clients:
            client.close()
    assert running.counter("listen.pickle_connections_overflowed") == 1
    deadline = time.monotonic() + 5
    while running.counter("listen.rejected.frame_truncated") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.counter("listen.rejected.frame_truncated") == 4, "the closed one, and the others at their EOF"
