"""Horizon listeners: carbon pickle (TCP), msgpack datagrams (UDP) and carbon plaintext lines (TCP).

Each protocol runs in its own process. Decoded datapoints collect in chunks, one per worker, and a chunk
goes onto its worker's bounded queue once it holds more than ``CHUNK_SIZE`` datapoints, or once the oldest
waiting datapoint has waited ``CHUNK_FLUSH_INTERVAL`` seconds (FIX H3), or when the connection closes. A
full queue drops the chunk; the drop is logged and counted (``listen.<proto>_chunks_dropped``, in
datapoints, as the original).

The original had one queue shared by every worker, so two workers could write one metric's datapoints out
of order (until Roomba sorted them), and the Analyzer, which takes the last *decoded* datapoint as the
newest, could analyse an older one. Here a metric always goes to the same worker (:func:`shard`), so one
connection's datapoints for a metric reach Redis in the order they were sent.

Beyond the original: a TCP listener serves any number of clients at once, one thread per connection, each
with its own chunk (H2); a bad frame, datagram or line is dropped, logged and counted, and the listener
keeps serving (FIX H1). An oversized pickle length prefix closes that connection without reading the body.
Chunks are checked after each frame (read) rather than each datapoint, so a 500-datapoint carbon frame is
queued as one chunk: the queue bound then holds more datapoints, never fewer.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from skyline_analyzer.config import Settings
from skyline_analyzer.horizon.protocols import BadInput, Datapoint, decode_datagram, decode_line, decode_pickle
from skyline_analyzer.horizon.stats import CounterRow

log = logging.getLogger(__name__)

#: Largest datagram; the original read 1024 bytes and died on anything longer (FIX H1).
MAX_DATAGRAM_BYTES = 65535
#: Longest plaintext line (twisted's LineReceiver default, which carbon uses); a longer one is dropped.
MAX_LINE_BYTES = 16384
#: Bytes asked of the kernel per TCP read.
READ_BYTES = 262144
#: Datagrams decoded before they are handed to the chunker together.
UDP_BATCH = 256
#: Receive buffer requested for the UDP socket, so bursts survive a descheduled listener.
UDP_RCVBUF_BYTES = 8 * 1024 * 1024
#: Seconds between checks that the agent is alive and no stop was asked for.
POLL_SECONDS = 0.5
#: Rejections logged per connection (and per interval for UDP) before the log only counts them.
LOGGED_REJECTIONS = 5
#: Seconds between summaries of dropped chunks (the first drop is logged at once).
DROP_LOG_SECONDS = 10.0

_LENGTH = struct.Struct("!I")


def shard(name: str, shards: int) -> int:
    """The worker queue a metric's datapoints go to: the same one always, so one worker writes them in order."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % shards if shards > 1 else 0


class Chunker:
    """Datapoints waiting to be queued, one chunk per worker queue: by size, by age, or on :meth:`flush`.

    Parameters
    ----------
    work_queues
        One bounded queue per worker; only ``put_nowait`` is used. A metric always goes to the same queue
        (:func:`shard`), so its datapoints from one connection reach Redis in the order they were sent.
    protocol
        ``pickle``, ``udp`` or ``plaintext``: names the counters and log lines.
    chunk_size
        A chunk is queued once it holds more than this many datapoints.
    flush_interval
        Seconds the oldest waiting datapoint may wait before the chunks are queued anyway.
    """

    def __init__(self, work_queues: Sequence[Any], protocol: str, chunk_size: int, flush_interval: float,
                 counters: CounterRow, clock: Callable[[], float] = time.monotonic) -> None:
        self.queues = list(work_queues)
        self.protocol = protocol
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        self.counters = counters
        self.clock = clock
        self.chunks: list[list[Datapoint]] = [[] for _ in self.queues]
        self.waiting = 0
        self.oldest = 0.0
        self._unlogged_drops = 0
        self._last_drop_log = -DROP_LOG_SECONDS

    def extend(self, datapoints: list[Datapoint]) -> None:
        """Add decoded datapoints; queue any chunk that is now over size."""
        if not datapoints:
            return
        if not self.waiting:
            self.oldest = self.clock()
        self.waiting += len(datapoints)
        self.counters.add(f"listen.{self.protocol}_datapoints_received", len(datapoints))
        if len(self.queues) == 1:
            self.chunks[0].extend(datapoints)
        else:
            shards = len(self.queues)
            for datapoint in datapoints:
                self.chunks[shard(datapoint[0], shards)].append(datapoint)
        for index, chunk in enumerate(self.chunks):
            if len(chunk) > self.chunk_size:
                self._put(index)

    def wait(self) -> float:
        """Seconds until the waiting datapoints are due (``flush_interval`` when none wait)."""
        if not self.waiting:
            return self.flush_interval
        return max(0.0, self.oldest + self.flush_interval - self.clock())

    def flush_if_due(self) -> None:
        if self.waiting and self.clock() - self.oldest >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Queue every waiting datapoint now (or drop and count what meets a full queue)."""
        for index, chunk in enumerate(self.chunks):
            if chunk:
                self._put(index)

    def _put(self, index: int) -> None:
        chunk = self.chunks[index]
        self.chunks[index] = []
        # The other chunks keep the deadline of the oldest datapoint: they may go a little early, never late.
        self.waiting -= len(chunk)
        try:
            self.queues[index].put_nowait(chunk)
        except queue.Full:
            self.counters.add(f"listen.{self.protocol}_chunks_dropped", len(chunk))
            self._unlogged_drops += len(chunk)
            now = self.clock()
            if now - self._last_drop_log >= DROP_LOG_SECONDS:
                log.error("horizon.listen :: %s queue is full, dropping %d datapoints", self.protocol,
                          self._unlogged_drops)
                self._unlogged_drops = 0
                self._last_drop_log = now


class Rejections:
    """Counts and logs the frames one connection (or the UDP socket) refuses, with a cap on log lines."""

    def __init__(self, protocol: str, peer: str, counters: CounterRow) -> None:
        self.protocol = protocol
        self.peer = peer
        self.counters = counters
        self.logged = 0

    def frame(self, reason: str) -> None:
        self.counters.add(f"listen.{self.protocol}_frames_rejected")
        self._log(f"rejected a {self.protocol} frame from {self.peer}: {reason}")

    def datapoints(self, reasons: list[str]) -> None:
        self.counters.add(f"listen.{self.protocol}_datapoints_rejected", len(reasons))
        self._log(f"rejected {len(reasons)} datapoints in a {self.protocol} frame from {self.peer}: {reasons[0]}")

    def _log(self, message: str) -> None:
        self.logged += 1
        if self.logged <= LOGGED_REJECTIONS:
            log.error("horizon.listen :: %s", message)
        elif self.logged == LOGGED_REJECTIONS + 1:
            log.error("horizon.listen :: further rejections from %s are counted, not logged", self.peer)


class Listener:
    """Shared state of one protocol's listener process."""

    def __init__(self, protocol: str, settings: Settings, work_queues: Sequence[Any], counters: CounterRow,
                 stopping: threading.Event) -> None:
        self.protocol = protocol
        self.settings = settings
        self.queues = work_queues
        self.counters = counters
        self.stopping = stopping

    def chunker(self) -> Chunker:
        return Chunker(self.queues, self.protocol, self.settings.CHUNK_SIZE, self.settings.CHUNK_FLUSH_INTERVAL,
                       self.counters)


def _peer(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
    except OSError:
        return "a closed peer"
    return f"{host}:{port}"


def _read_stream(conn: socket.socket, listener: Listener, chunker: Chunker,
                 consume: Callable[[bytearray], int]) -> bytes:
    """Read a connection until EOF or a stop, feeding the buffer to ``consume``.

    ``consume`` returns how many bytes it used, or -1 to close the connection. Returns the unused tail.
    """
    buffer = bytearray()
    while not listener.stopping.is_set():
        conn.settimeout(min(chunker.wait(), POLL_SECONDS) or 0.001)
        try:
            data = conn.recv(READ_BYTES)
        except TimeoutError:
            chunker.flush_if_due()
            continue
        except OSError as exc:
            log.info("horizon.listen :: %s connection from %s failed: %s", listener.protocol, _peer(conn), exc)
            break
        if not data:
            break
        buffer += data
        used = consume(buffer)
        if used < 0:
            buffer.clear()
            break
        del buffer[:used]
        chunker.flush_if_due()
    return bytes(buffer)


def serve_pickle_connection(conn: socket.socket, listener: Listener) -> None:
    """Read length-prefixed pickle frames from one carbon-relay connection until it closes."""
    peer = _peer(conn)
    chunker = listener.chunker()
    rejections = Rejections("pickle", peer, listener.counters)
    limit = listener.settings.MAX_PICKLE_FRAME_BYTES

    def consume(buffer: bytearray) -> int:
        offset = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - offset >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer, offset)
                if length > limit:
                    rejections.frame(f"length prefix {length} exceeds MAX_PICKLE_FRAME_BYTES {limit}; closing")
                    return -1
                end = offset + _LENGTH.size + length
                if len(buffer) < end:
                    break
                payload = bytes(view[offset + _LENGTH.size : end])
                offset = end
                try:
                    good, bad = decode_pickle(payload)
                except BadInput as exc:
                    rejections.frame(str(exc))
                    continue
                if bad:
                    rejections.datapoints(bad)
                chunker.extend(good)
        finally:
            view.release()
        return offset

    try:
        tail = _read_stream(conn, listener, chunker, consume)
        if tail:
            rejections.frame(f"connection closed inside a frame ({len(tail)} bytes unread)")
    finally:
        chunker.flush()
        conn.close()


def serve_plaintext_connection(conn: socket.socket, listener: Listener) -> None:
    """Read ``name value timestamp`` lines from one connection until it closes."""
    peer = _peer(conn)
    chunker = listener.chunker()
    rejections = Rejections("plaintext", peer, listener.counters)
    discarding = False  # inside an over-long line: skip to its newline

    def consume(buffer: bytearray) -> int:
        nonlocal discarding
        offset = 0
        good: list[Datapoint] = []
        while True:
            newline = buffer.find(b"\n", offset)
            if newline < 0:
                if len(buffer) - offset > MAX_LINE_BYTES:
                    if not discarding:
                        rejections.frame(f"line longer than {MAX_LINE_BYTES} bytes")
                    discarding = True
                    offset = len(buffer)
                break
            line = bytes(buffer[offset:newline]).rstrip(b"\r")
            offset = newline + 1
            if discarding:
                discarding = False
                continue
            if len(line) > MAX_LINE_BYTES:
                rejections.frame(f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not line.strip():
                continue
            try:
                good.append(decode_line(line))
            except BadInput as exc:
                rejections.frame(str(exc))
        chunker.extend(good)
        return offset

    try:
        tail = _read_stream(conn, listener, chunker, consume)
        if tail.strip() and not discarding:
            # carbon also accepts a last line without its newline when the client closes.
            try:
                chunker.extend([decode_line(tail.rstrip(b"\r"))])
            except BadInput as exc:
                rejections.frame(str(exc))
    finally:
        chunker.flush()
        conn.close()


def serve_tcp(sock: socket.socket, listener: Listener, handler: Callable[[socket.socket, Listener], None]) -> None:
    """Accept clients until a stop, each served by ``handler`` on its own thread; then wait for them."""
    sock.settimeout(POLL_SECONDS)
    threads: set[threading.Thread] = set()
    while not listener.stopping.is_set():
        try:
            conn, address = sock.accept()
        except TimeoutError:
            threads = {t for t in threads if t.is_alive()}
            continue
        except OSError as exc:
            log.error("horizon.listen :: %s accept failed: %s", listener.protocol, exc)
            time.sleep(POLL_SECONDS)
            continue
        log.info("horizon.listen :: %s connection from %s:%s", listener.protocol, *address[:2])
        thread = threading.Thread(target=handler, args=(conn, listener), daemon=True,
                                  name=f"{listener.protocol}-{address[0]}:{address[1]}")
        thread.start()
        threads.add(thread)
    for thread in threads:
        thread.join(timeout=listener.settings.CHUNK_FLUSH_INTERVAL + 2 * POLL_SECONDS)


def serve_udp(sock: socket.socket, listener: Listener) -> None:
    """Receive datagrams until a stop; each is one datapoint, and a bad one is dropped and counted.

    The socket is drained without blocking, one system call per datagram, and what it yields is handed to
    the chunker every :data:`UDP_BATCH` datagrams or whenever the socket is empty: at tens of thousands of
    datagrams a second the per-datagram cost is what decides how many the kernel has to drop.
    """
    chunker = listener.chunker()
    rejections = Rejections("udp", "UDP senders", listener.counters)
    next_log_reset = time.monotonic() + DROP_LOG_SECONDS
    buffer = bytearray(MAX_DATAGRAM_BYTES)
    view = memoryview(buffer)
    pending: list[Datapoint] = []
    sock.setblocking(False)
    try:
        while not listener.stopping.is_set():
            try:
                size = sock.recv_into(buffer)
            except BlockingIOError:
                chunker.extend(pending)
                pending = []
                chunker.flush_if_due()
                select.select([sock], [], [], min(chunker.wait(), POLL_SECONDS))
                continue
            try:
                pending.append(decode_datagram(view[:size]))
            except BadInput as exc:
                rejections.frame(str(exc))
                # UDP has no connection to scope the log cap to: re-open it every interval.
                if time.monotonic() >= next_log_reset:
                    rejections.logged = 0
                    next_log_reset = time.monotonic() + DROP_LOG_SECONDS
            if len(pending) >= UDP_BATCH:
                chunker.extend(pending)
                pending = []
                chunker.flush_if_due()
    finally:
        chunker.extend(pending)
        chunker.flush()


def bind(protocol: str, settings: Settings) -> socket.socket:
    """The bound (and, for TCP, listening) socket of a protocol on ``HORIZON_IP``.

    Raises OSError naming the address when it cannot bind.
    """
    port = {"pickle": settings.PICKLE_PORT, "udp": settings.UDP_PORT, "plaintext": settings.PLAINTEXT_PORT}[protocol]
    address = (settings.HORIZON_IP, port)
    family = socket.AF_INET6 if ":" in settings.HORIZON_IP else socket.AF_INET
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if kind == socket.SOCK_DGRAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF_BYTES)
        sock.bind(address)
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot bind the {protocol} listener to {address[0]}:{address[1]}: "
                                 f"{exc.strerror or exc}") from exc
    return sock


def run_listener(protocol: str, sock: socket.socket, settings: Settings, work_queues: Sequence[Any],
                 counters: CounterRow, stop: Any, parent_pid: int) -> None:
    """A listener process's body: serve ``sock`` until the agent asks to stop or goes away."""
    stopping = threading.Event()
    listener = Listener(protocol, settings, work_queues, counters, stopping)
    if protocol == "udp":
        target, args = serve_udp, (sock, listener)
    else:
        handler = serve_pickle_connection if protocol == "pickle" else serve_plaintext_connection
        target, args = serve_tcp, (sock, listener, handler)
    server = threading.Thread(target=target, args=args, name=f"{protocol}-listener")
    server.start()
    log.info("horizon.listen :: %s listener serving %s:%s", protocol, *sock.getsockname()[:2])
    while server.is_alive() and not stop.is_set() and os.getppid() == parent_pid:
        stop.wait(POLL_SECONDS)
    stopping.set()
    server.join()
    if os.getppid() != parent_pid:
        # The agent is gone, and its workers with it: nobody will read what is still buffered for the
        # queues, and waiting at exit to write it would leave this process behind for ever.
        log.error("horizon.listen :: the agent (pid %s) is gone: %s listener exiting", parent_pid, protocol)
        for work_queue in work_queues:
            work_queue.cancel_join_thread()
    log.info("horizon.listen :: %s listener stopped", protocol)
