"""Clients of the three Horizon protocols, for the seeder and the ingest benchmark.

They send what the real senders send: carbon-relay's pickle frames (a 4-byte big-endian length, then a
protocol-2 pickle of up to 500 ``(name, (timestamp, value))`` tuples), one msgpack ``[name, [timestamp,
value]]`` per datagram as ``utils/seed_data.py`` did, and carbon plaintext lines.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import msgpack

#: carbon-relay's MAX_DATAPOINTS_PER_MESSAGE.
FRAME_DATAPOINTS = 500

Datapoint = tuple[str, tuple[Any, Any]]


def _batches(datapoints: Iterable[Datapoint], size: int) -> Iterator[list[Datapoint]]:
    it = iter(datapoints)
    while batch := list(islice(it, size)):
        yield batch


def pickle_frame(datapoints: Sequence[Datapoint]) -> bytes:
    """One carbon pickle frame: length prefix and payload."""
    payload = pickle.dumps(list(datapoints), protocol=2)
    return struct.pack("!I", len(payload)) + payload


def _send_stream(address: tuple[str, int], datapoints: Iterable[Datapoint], per_write: int,
                 encode: Callable[[list[Datapoint]], bytes]) -> int:
    """Send ``encode``d batches of ``per_write`` datapoints over one TCP connection; the count sent."""
    sent = 0
    with socket.create_connection(address, timeout=30) as sock:
        for batch in _batches(datapoints, per_write):
            sock.sendall(encode(batch))
            sent += len(batch)
    return sent


def send_pickle(address: tuple[str, int], datapoints: Iterable[Datapoint],
                frame_datapoints: int = FRAME_DATAPOINTS) -> int:
    """Send over one TCP connection in frames of ``frame_datapoints``; returns the datapoints sent."""
    return _send_stream(address, datapoints, frame_datapoints, pickle_frame)


def plaintext_lines(datapoints: Iterable[Datapoint]) -> bytes:
    """Carbon plaintext: ``name value timestamp\\n`` per datapoint."""
    return "".join(f"{name} {value!r} {timestamp!r}\n" for name, (timestamp, value) in datapoints).encode()


def send_plaintext(address: tuple[str, int], datapoints: Iterable[Datapoint], lines_per_write: int = 1000) -> int:
    """Send lines over one TCP connection; returns the datapoints sent."""
    return _send_stream(address, datapoints, lines_per_write, plaintext_lines)


def send_udp(address: tuple[str, int], datapoints: Iterable[Datapoint], rate: float | None = None) -> int:
    """One datagram per datapoint, at most ``rate`` a second when given; returns the datagrams sent.

    UDP has no flow control: a sender faster than the listener loses datagrams in the kernel, which is
    why the seeder paces itself.
    """
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sent = 0
    started = time.monotonic()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for name, pair in datapoints:
            sock.sendto(msgpack.packb((name, list(pair))), address)
            sent += 1
            if rate and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return sent
