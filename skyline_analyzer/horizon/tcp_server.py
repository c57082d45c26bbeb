"""The TCP listeners' connections: one thread serves all of them, each within the listener's limits.

Every client of a TCP listener (pickle or plaintext) has its own receiver (:mod:`.pickle_receiver`,
:mod:`.plaintext_receiver`), fed from a non-blocking socket by one selector loop. All connections share the
listener's chunker, so a metric's datapoints from one connection reach Redis in the order they were sent.
The original served one client at a time; a first rewrite here used a thread per connection, with no limit
on connections, idle time or buffered bytes, so a thousand idle connections starved real clients and
partial frames held hundreds of MB. Now (docs/horizon.md, "Limits"):

* at most ``max_connections`` are open. A new one past that evicts the connection that has been quiet the
  longest among those that never delivered a datapoint, else one that delivered but has been idle
  :data:`EVICT_IDLE_SECONDS`, else it is refused (closed at once). So idle or stalled connections cannot
  keep a real client out, and a working client is never closed for a newcomer;
* a connection that sends nothing for ``idle_timeout`` seconds is closed;
* the bytes held for partial frames and lines, over all connections, stay under ``max_buffered_bytes``:
  past it, the connection holding the most is closed and its partial input counted as truncated.

Each is counted (``listen.<proto>_connections_*``). Accepted datapoints are never lost by a close: they are
in the chunker already. Anything unexpected while one connection's bytes are handled closes that
connection alone, counted as ``unexpected_error``.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from skyline_analyzer.excerpt import escape
from skyline_analyzer.horizon.chunker import Chunker
from skyline_analyzer.horizon.counters import CounterRow
from skyline_analyzer.horizon.datapoints import unexpected
from skyline_analyzer.horizon.rejections import Rejections

log = logging.getLogger(__name__)

#: Bytes asked of the kernel per read.
READ_BYTES = 262144
#: Seconds between checks for a stop, a due chunk or an idle connection when nothing arrives.
POLL_SECONDS = 0.5
#: Connections accepted per wake-up, so a flood of new ones cannot starve the open ones.
ACCEPTS_PER_WAKE = 64
#: Seconds a connection that has delivered datapoints must be idle before a newcomer may evict it.
EVICT_IDLE_SECONDS = 10.0
#: Seconds the listener stops accepting after the process ran out of file descriptors with nothing to evict.
ACCEPT_PAUSE_SECONDS = 0.5
#: Reads per connection at stop, for what it sent before the stop (32 of READ_BYTES: a full kernel buffer).
DRAIN_READS = 32
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True)
class Limits:
    """What one TCP listener allows, over all its connections."""

    max_connections: int
    idle_timeout: float
    max_buffered_bytes: int


class StreamReceiver(Protocol):
    """What the server needs of a protocol's receiver (one per connection)."""

    accepted: int

    def feed(self, buffer: bytearray) -> int: ...

    def end(self, tail: bytes, eof: bool) -> None: ...


class Connection:
    """One client: its socket, its receiver, the bytes of its partial input, when it last sent anything."""

    __slots__ = ("buffer", "last_active", "peer", "receiver", "sock")

    def __init__(self, sock: socket.socket, peer: str, receiver: StreamReceiver, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.receiver = receiver
        self.buffer = bytearray()
        self.last_active = now


class TcpServer:
    """Serve one listening socket until ``stopping`` is set (:meth:`serve`)."""

    def __init__(self, sock: socket.socket, protocol: str, new_receiver: Callable[[str], StreamReceiver],
                 chunker: Chunker, counters: CounterRow, rejections: Rejections, limits: Limits,
                 stopping: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        self.sock = sock
        self.protocol = protocol
        self.new_receiver = new_receiver
        self.chunker = chunker
        self.counters = counters
        self.rejections = rejections
        self.limits = limits
        self.stopping = stopping
        self.clock = clock
        # Least recently active first. "quiet": no datapoint accepted yet, the first to be evicted.
        self.quiet: OrderedDict[int, Connection] = OrderedDict()
        self.proven: OrderedDict[int, Connection] = OrderedDict()
        self.buffered = 0
        self.selector = selectors.DefaultSelector()
        self.accept_paused_until: float | None = None

    def serve(self) -> None:
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ, None)
        try:
            while not self.stopping.is_set():
                for key, _ in self.selector.select(min(self.chunker.wait(), POLL_SECONDS)):
                    self._handle(key.data)
                now = self.clock()
                self.chunker.flush_if_due()
                self._close_idle(now)
                if self.accept_paused_until is not None and now >= self.accept_paused_until:
                    self.accept_paused_until = None
                    self.selector.register(self.sock, selectors.EVENT_READ, None)
            # What the clients sent before the stop is still the listener's to accept (a bounded drain:
            # a client that keeps sending must not hold the stop up).
            for conn in [*self.quiet.values(), *self.proven.values()]:
                for _ in range(DRAIN_READS):
                    if not self._handle(conn):
                        break
        finally:
            for conn in [*self.quiet.values(), *self.proven.values()]:
                self._close(conn, eof=False)
            self.selector.close()
            self.chunker.flush()
            self.rejections.close()

    def connections(self) -> int:
        return len(self.quiet) + len(self.proven)

    def _count(self, event: str) -> None:
        self.counters.add(f"listen.{self.protocol}_{event}")

    def _handle(self, conn: Connection | None) -> bool:
        """Accept (``conn`` None) or read one connection; a defect closes that connection alone."""
        try:
            if conn is None:
                self._accept()
                return False
            return self._read(conn)
        except Exception as exc:
            self.rejections.frame(unexpected(exc, f"a {self.protocol} connection", None),
                                  conn.peer if conn else "the listening socket")
            if conn is not None and conn.sock.fileno() >= 0:
                conn.buffer.clear()
                self._close(conn, eof=False)
            # Where the defect struck is unknown: count the partial input held afresh.
            self.buffered = sum(len(c.buffer) for c in (*self.quiet.values(), *self.proven.values()))
            return False

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    continue  # the client went away before it was accepted
                self._count("accept_errors")
                victim = self._candidate(self.clock(), any_idle=True)
                if victim is not None:
                    self._count("connections_evicted")
                    self._close(victim, eof=False)
                else:
                    log.error("horizon.listen :: %s listener out of file descriptors: %s; pausing accept",
                              self.protocol, exc.strerror)
                    self.selector.unregister(self.sock)
                    self.accept_paused_until = self.clock() + ACCEPT_PAUSE_SECONDS
                return
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: tuple) -> None:
        now = self.clock()
        if self.connections() >= self.limits.max_connections:
            victim = self._candidate(now, any_idle=False)
            if victim is None:
                self._count("connections_refused")
                sock.close()
                return
            self._count("connections_evicted")
            self._close(victim, eof=False)
        self._count("connections")
        sock.setblocking(False)
        peer = escape(f"{address[0]}:{address[1]}") if isinstance(address, tuple) else "a client"
        log.debug("horizon.listen :: %s connection from %s", self.protocol, peer)
        conn = Connection(sock, peer, self.new_receiver(peer), now)
        self.quiet[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)

    def _candidate(self, now: float, any_idle: bool) -> Connection | None:
        """The connection a newcomer may take the place of, if any (see the module's notes)."""
        if self.quiet:
            return next(iter(self.quiet.values()))
        if self.proven:
            oldest = next(iter(self.proven.values()))
            if any_idle or now - oldest.last_active >= EVICT_IDLE_SECONDS:
                return oldest
        return None

    def _read(self, conn: Connection) -> bool:
        """Read what ``conn`` sent and hand it to its receiver; False once nothing more is to be read now."""
        try:
            data = conn.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self._close(conn, eof=False)
            return False
        if not data:
            self._close(conn, eof=True)
            return False
        fd = conn.sock.fileno()
        conn.last_active = self.clock()
        table = self.quiet if fd in self.quiet else self.proven
        table.move_to_end(fd)
        before = len(conn.buffer)
        conn.buffer += data
        try:
            used = conn.receiver.feed(conn.buffer)
        except Exception as exc:
            # Receivers catch per input; this is a defect between inputs, so the framing is lost.
            self.rejections.frame(unexpected(exc, f"a {self.protocol} read", None), conn.peer)
            used = -1
        if used < 0:
            # The receiver refused the connection's framing and counted it: nothing held is worth keeping.
            self.buffered -= before
            conn.buffer.clear()
            self._close(conn, eof=False)
            return False
        del conn.buffer[:used]
        self.buffered += len(conn.buffer) - before
        if table is self.quiet and conn.receiver.accepted:
            self.proven[fd] = self.quiet.pop(fd)
        if self.buffered > self.limits.max_buffered_bytes:
            self._shed_buffers()
        return conn.sock.fileno() >= 0

    def _shed_buffers(self) -> None:
        """Close the connections holding the most partial input until the total is within the limit."""
        while self.buffered > self.limits.max_buffered_bytes:
            largest = max((*self.quiet.values(), *self.proven.values()), key=lambda c: len(c.buffer))
            self._count("connections_overflowed")
            self._close(largest, eof=False)

    def _close_idle(self, now: float) -> None:
        for table in (self.quiet, self.proven):
            while table:
                conn = next(iter(table.values()))
                if now - conn.last_active < self.limits.idle_timeout:
                    break
                self._count("connections_timed_out")
                self._close(conn, eof=False)

    def _close(self, conn: Connection, eof: bool) -> None:
        """Forget ``conn`` and close it; its receiver sees what was left unread (eof: the client closed)."""
        fd = conn.sock.fileno()
        if fd < 0:
            return
        if self.quiet.pop(fd, None) is None:
            self.proven.pop(fd, None)
        self.selector.unregister(conn.sock)
        conn.sock.close()
        tail = bytes(conn.buffer)
        self.buffered -= len(tail)
        conn.buffer = bytearray()
        try:
            conn.receiver.end(tail, eof)
        except Exception as exc:
            self.rejections.frame(unexpected(exc, f"the end of a {self.protocol} connection", None), conn.peer)
