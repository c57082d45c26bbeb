"""The UDP protocol: one msgpack ``[name, [timestamp, value]]`` per datagram (``utils/seed_data.py``'s).

Datagrams are read up to 65535 bytes (the original read 1024 and died on anything longer or malformed,
FIX H1). Each datagram is one input: a bad one is refused and counted alone, and anything unexpected while
one is handled is caught there. msgpack itself bounds nesting (``StackError``) and sizes by the datagram.
UDP has no flow control: a burst beyond what the listener drains is dropped by the kernel, where no
listener can count it.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

import msgpack

from skyline_analyzer.exceptions import BadInput, Rejection
from skyline_analyzer.horizon.chunker import Chunker
from skyline_analyzer.horizon.datapoints import Datapoint, Validator, unexpected
from skyline_analyzer.horizon.rejections import Rejections

#: Largest datagram.
MAX_DATAGRAM_BYTES = 65535
#: Datagrams decoded before they are handed to the chunker together.
BATCH = 256
#: Bytes of a refused datagram shown in its log line.
SHOWN_BYTES = 64
#: Seconds between checks for a stop while the socket is quiet.
POLL_SECONDS = 0.5
SENDERS = "UDP senders"


def decode_datagram(data: bytes | memoryview, validator: Validator) -> Datapoint:
    """The datapoint of one datagram: exactly one msgpack ``[name, [timestamp, value]]``; raise :class:`BadInput`."""
    try:
        obj: Any = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
    except Exception as exc:
        raise BadInput(Rejection.MSGPACK_UNREADABLE, f"datagram is not one msgpack object ({type(exc).__name__})",
                       bytes(data[:SHOWN_BYTES])) from None
    return validator.datapoint(obj)


class UdpReceiver:
    """The UDP listener's loop: :meth:`serve` until ``stopping`` is set, then what the socket still holds."""

    def __init__(self, sock: socket.socket, validator: Validator, chunker: Chunker, rejections: Rejections,
                 stopping: threading.Event) -> None:
        self.sock = sock
        self.validator = validator
        self.chunker = chunker
        self.rejections = rejections
        self.stopping = stopping
        self.buffer = bytearray(MAX_DATAGRAM_BYTES)
        self.view = memoryview(self.buffer)
        self.pending: list[Datapoint] = []

    def serve(self) -> None:
        """Receive until a stop, one system call per datagram, handing datapoints on every :data:`BATCH`.

        At tens of thousands of datagrams a second the per-datagram cost is what decides how many the
        kernel has to drop, hence the non-blocking drain and the batching.
        """
        self.sock.setblocking(False)
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            while not self.stopping.is_set():
                if not self.receive():
                    self._hand_on()
                    self.chunker.flush_if_due()
                    poller.poll(1000 * min(self.chunker.wait(), POLL_SECONDS))
                elif len(self.pending) >= BATCH:
                    self._hand_on()
                    self.chunker.flush_if_due()
            # What arrived before the stop was asked for is still the listener's to accept.
            while self.receive():
                if len(self.pending) >= BATCH:
                    self._hand_on()
        finally:
            self._hand_on()
            self.chunker.flush()
            self.rejections.close()

    def receive(self) -> bool:
        """Read and decode one datagram; False when the socket has none."""
        try:
            size = self.sock.recv_into(self.buffer)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            # An ICMP error reported on the socket, for instance: wait for the next datagram.
            return False
        data = self.view[:size]
        try:
            self.pending.append(decode_datagram(data, self.validator))
        except BadInput as exc:
            self.rejections.frame(exc, SENDERS)
        except Exception as exc:
            self.rejections.frame(unexpected(exc, "a datagram", bytes(data[:SHOWN_BYTES])), SENDERS)
        return True

    def _hand_on(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, []
            self.chunker.extend(pending)
