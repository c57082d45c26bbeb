"""A Horizon listener process: bind a protocol's socket, serve it, stop when the agent says or goes away.

Each protocol has its own process and its own receiver: carbon pickle (:mod:`.pickle_receiver`) and
plaintext (:mod:`.plaintext_receiver`) over TCP (:mod:`.tcp_server`), msgpack datagrams over UDP
(:mod:`.udp_receiver`). Accepted datapoints go to the workers through the listener's :class:`.Chunker`;
refusals are counted and logged by its :class:`.Rejections`. Nothing a client sends stops a listener.

File descriptors: the agent raises the soft ``RLIMIT_NOFILE`` to what ``HORIZON_MAX_CONNECTIONS`` needs when
the hard limit allows (:func:`raise_descriptor_limit`); a TCP listener that still has fewer descriptors left
holds fewer connections and says so at start (:func:`tcp_limits`), so it never runs out while accepting.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from skyline_analyzer.config import Settings
from skyline_analyzer.horizon.chunker import Chunker
from skyline_analyzer.horizon.counters import CounterRow
from skyline_analyzer.horizon.datapoints import Validator
from skyline_analyzer.horizon.pickle_receiver import PickleReceiver
from skyline_analyzer.horizon.plaintext_receiver import PlaintextReceiver
from skyline_analyzer.horizon.rejections import Rejections
from skyline_analyzer.horizon.tcp_server import Limits, StreamReceiver, TcpServer
from skyline_analyzer.horizon.udp_receiver import UdpReceiver

log = logging.getLogger(__name__)

#: Receive buffer requested for the UDP socket, so bursts survive a descheduled listener.
UDP_RCVBUF_BYTES = 8 * 1024 * 1024
#: Connections the kernel queues for accept().
BACKLOG = 128
#: Seconds between checks that the agent is alive and no stop was asked for.
POLL_SECONDS = 0.5
#: File descriptors a listener keeps free beyond its connections (log rotation, the kernel's own needs).
RESERVED_DESCRIPTORS = 32


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
            sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot bind the {protocol} listener to {address[0]}:{address[1]}: "
                                 f"{exc.strerror or exc}") from exc
    return sock


def open_descriptors() -> int:
    """File descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return RESERVED_DESCRIPTORS


def raise_descriptor_limit(settings: Settings) -> None:
    """Raise the soft ``RLIMIT_NOFILE`` towards what the connection limit needs, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.HORIZON_MAX_CONNECTIONS + open_descriptors() + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def tcp_limits(settings: Settings, protocol: str) -> Limits:
    """This listener's limits: the settings', with the connections capped by the descriptors left."""
    connections = settings.HORIZON_MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        left = soft - open_descriptors() - RESERVED_DESCRIPTORS
        if left < connections:
            log.warning("horizon.listen :: %s listener: RLIMIT_NOFILE %d leaves descriptors for %d connections, "
                        "fewer than HORIZON_MAX_CONNECTIONS %d: holding at most %d (raise LimitNOFILE)",
                        protocol, soft, max(left, 1), connections, max(left, 1))
            connections = max(left, 1)
    return Limits(connections, float(settings.HORIZON_IDLE_TIMEOUT), settings.HORIZON_MAX_BUFFERED_BYTES)


def make_server(protocol: str, sock: socket.socket, settings: Settings, work_queues: Sequence[Any],
                counters: CounterRow, stopping: threading.Event) -> UdpReceiver | TcpServer:
    """The loop that serves one protocol's socket until ``stopping`` is set (its ``serve`` method)."""
    chunker = Chunker(work_queues, protocol, settings.CHUNK_SIZE, settings.CHUNK_FLUSH_INTERVAL, counters)
    rejections = Rejections(protocol, counters)
    validator = Validator.from_settings(settings)
    if protocol == "udp":
        return UdpReceiver(sock, validator, chunker, rejections, stopping)
    new_receiver: Callable[[str], StreamReceiver]
    if protocol == "pickle":
        def new_receiver(peer: str) -> StreamReceiver:
            return PickleReceiver(validator, chunker.extend, rejections, peer, settings.MAX_PICKLE_FRAME_BYTES)
    else:
        def new_receiver(peer: str) -> StreamReceiver:
            return PlaintextReceiver(validator, chunker.extend, rejections, peer)
    return TcpServer(sock, protocol, new_receiver, chunker, counters, rejections, tcp_limits(settings, protocol),
                     stopping)


def _serve(protocol: str, serve: Callable[[], None]) -> None:
    try:
        serve()
    except Exception as exc:
        # Every input is handled inside its own boundary; this is a defect of the loop itself. The agent
        # sees the process end and starts it again; the message names the code, never the input.
        log.error("horizon.listen :: %s listener failed: %s\n%s", protocol, type(exc).__name__,
                  "".join(traceback.format_tb(exc.__traceback__)))


def run_listener(protocol: str, sock: socket.socket, settings: Settings, work_queues: Sequence[Any],
                 counters: CounterRow, stop: Any, parent_pid: int) -> None:
    """A listener process's body: serve ``sock`` until the agent asks to stop or goes away."""
    stopping = threading.Event()
    server = make_server(protocol, sock, settings, work_queues, counters, stopping)
    thread = threading.Thread(target=_serve, args=(protocol, server.serve), name=f"{protocol}-listener")
    thread.start()
    log.info("horizon.listen :: %s listener serving %s:%s", protocol, *sock.getsockname()[:2])
    while thread.is_alive() and not stop.is_set() and os.getppid() == parent_pid:
        stop.wait(POLL_SECONDS)
    stopping.set()
    thread.join()
    if os.getppid() != parent_pid:
        # The agent is gone, and its workers with it: nobody will read what is still buffered for the
        # queues, and waiting at exit to write it would leave this process behind for ever.
        log.error("horizon.listen :: the agent (pid %s) is gone: %s listener exiting", parent_pid, protocol)
        for work_queue in work_queues:
            work_queue.cancel_join_thread()
    log.info("horizon.listen :: %s listener stopped", protocol)

