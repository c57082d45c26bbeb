"""A fuzz campaign against a real Horizon and Redis, shared by tests/test_horizon_fuzz.py and
benchmarks/fuzz_horizon.py.

Hostile inputs (:mod:`tests.hostile_inputs`) go to all three listeners at once, one thread per protocol,
interleaved with valid datapoints from several clients of each protocol. Then the accounting: children that
died, valid datapoints lost or stored twice, every rejection counted where it should be, memory of the
listeners and workers before and after.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from skyline_analyzer.codec import decode_pairs
from skyline_analyzer.horizon.senders import pickle_frame, plaintext_lines
from tests.horizon_process import HorizonProcess, rss_bytes
from tests.hostile_inputs import ANY, Hostile, Kept, hostile_inputs

PROTOCOLS = ("pickle", "udp", "plaintext")
PORTS = {"pickle": "PICKLE_PORT", "udp": "UDP_PORT", "plaintext": "PLAINTEXT_PORT"}
#: Valid datapoints each client sends per batch, and hostile inputs between two batches.
BATCH = 5
EVERY = 2
#: Datagrams a second the UDP senders keep under, so the kernel drops none.
UDP_RATE = 4000.0
HOSTILE_CONNECTIONS = 3


@dataclass
class ProtocolFigures:
    hostile: int = 0
    valid_sent: int = 0
    kept_sent: int = 0
    received: int = 0
    rejected_expected: int = 0
    rejected_counted: int = 0
    shed: int = 0


@dataclass
class Figures:
    protocols: dict[str, ProtocolFigures] = field(default_factory=dict)
    deaths: int = 0
    lost: int = 0
    duplicated: int = 0
    written: int = 0
    reasons_expected: Counter[str] = field(default_factory=Counter)
    reasons_counted: Counter[str] = field(default_factory=Counter)
    rss_before: dict[str, int] = field(default_factory=dict)
    rss_after: dict[str, int] = field(default_factory=dict)
    kernel_drops: int = 0
    seconds: float = 0.0

    def reasons_ok(self) -> bool:
        """Each known reason counted exactly, the rest (random bytes' reasons) adding up to what is left."""
        known = {r: n for r, n in self.reasons_expected.items() if r != ANY}
        counted = sum(self.reasons_counted.values())
        return (counted == sum(self.reasons_expected.values())
                and all(self.reasons_counted[r] >= n for r, n in known.items()))


class ValidClients:
    """``clients`` senders of one protocol, each with its own names and never a timestamp twice per name."""

    def __init__(self, protocol: str, clients: int, base: int) -> None:
        self.protocol = protocol
        self.clients = clients
        self.base = base
        self.sent: dict[str, list[tuple[int, float]]] = {}
        self.turn = 0

    def batch(self) -> tuple[int, list[tuple[str, tuple[int, float]]]]:
        client, self.turn = self.turn % self.clients, self.turn + 1
        batch = []
        for n in range(BATCH):
            name = f"valid.{self.protocol}.{client}.{(self.turn + n) % 7}"
            pairs = self.sent.setdefault(name, [])
            pair = (self.base + len(pairs), float(len(pairs)) * 0.25)
            pairs.append(pair)
            batch.append((name, pair))
        return client, batch


def _send_tcp(horizon: HorizonProcess, protocol: str, inputs: list[Hostile], valid: ValidClients) -> None:
    address = horizon.address(PORTS[protocol])
    encode = pickle_frame if protocol == "pickle" else plaintext_lines
    clients = [socket.create_connection(address, timeout=30) for _ in range(valid.clients)]
    hostile = [socket.create_connection(address, timeout=30) for _ in range(HOSTILE_CONNECTIONS)]
    try:
        for n, item in enumerate(inputs):
            if item.alone:
                with socket.create_connection(address, timeout=30) as alone:
                    try:
                        alone.sendall(item.data)
                        alone.shutdown(socket.SHUT_WR)
                        alone.recv(1)  # until the listener has closed it: the input has been handled
                    except OSError:
                        pass  # closed by the listener while it was sent
            else:
                hostile[n % HOSTILE_CONNECTIONS].sendall(item.data)
            if n % EVERY == 0:
                client, batch = valid.batch()
                clients[client].sendall(encode(batch))
    finally:
        for sock in clients + hostile:
            sock.close()


def _send_udp(horizon: HorizonProcess, inputs: list[Hostile], valid: ValidClients) -> None:
    address = horizon.address("UDP_PORT")
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(valid.clients + 1)]
    started, sent = time.monotonic(), 0
    try:
        for n, item in enumerate(inputs):
            datagrams = [(senders[-1], item.data)]
            if n % EVERY == 0:
                client, batch = valid.batch()
                datagrams += [(senders[client], msgpack.packb((name, list(pair)))) for name, pair in batch]
            for sock, data in datagrams:
                sock.sendto(data, address)
                sent += 1
            ahead = sent / UDP_RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        for sock in senders:
            sock.close()


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to ``port`` (``/proc/net/udp``)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[-1])
    return 0


def _processes(horizon: HorizonProcess) -> dict[str, int]:
    names = {f"{p} listener": f"{p} listener serving" for p in PROTOCOLS}
    names.update({f"worker {i}": f"worker {i} started" for i in range(horizon.settings.WORKER_PROCESSES)})
    return {name: horizon.pid_of(announcement) for name, announcement in names.items()}


def _stored(redis_conn: Any, expected: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[Any, ...]]]:
    keys = [f"metrics.{name}" for name in expected]
    return {name: decode_pairs(raw) if raw else [] for name, raw in zip(expected, redis_conn.mget(keys), strict=True)}


def run_campaign(horizon: HorizonProcess, redis_conn: Any, per_protocol: int, seed: int, clients: int = 4,
                 settle_timeout: float = 120.0) -> Figures:
    """Throw ``per_protocol`` hostile inputs at each listener with valid traffic interleaved; stop Horizon; account."""
    figures = Figures()
    now = int(time.time())
    kept = Kept(now - 900)
    inputs = {p: hostile_inputs(p, per_protocol, seed, kept) for p in PROTOCOLS}
    valid = {p: ValidClients(p, clients, now - 900) for p in PROTOCOLS}
    processes = _processes(horizon)
    figures.rss_before = {name: rss_bytes(pid) for name, pid in processes.items()}
    drops_before = udp_drops(horizon.settings.UDP_PORT)
    started = time.monotonic()
    threads = [threading.Thread(target=_send_udp, args=(horizon, inputs["udp"], valid["udp"]))]
    threads += [threading.Thread(target=_send_tcp, args=(horizon, p, inputs[p], valid[p]))
                for p in ("pickle", "plaintext")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected: dict[str, list[tuple[int, float]]] = {}
    for protocol in PROTOCOLS:
        expected.update(valid[protocol].sent)
        for item in inputs[protocol]:
            for name, pair in item.kept:
                expected.setdefault(name, []).append(pair)
    deadline = time.monotonic() + settle_timeout
    while time.monotonic() < deadline:
        stored = _stored(redis_conn, expected)
        if all(len(stored[name]) >= len(pairs) for name, pairs in expected.items()):
            break
        time.sleep(0.5)
    figures.seconds = time.monotonic() - started
    figures.rss_after = {name: rss_bytes(pid) for name, pid in processes.items()}
    figures.kernel_drops = udp_drops(horizon.settings.UDP_PORT) - drops_before
    alive = set(horizon.children())
    figures.deaths = sum(pid not in alive for pid in processes.values())

    assert horizon.stop() == 0
    counted = horizon.counters()
    figures.deaths = max(figures.deaths, int(counted["agent.child_deaths"]))
    figures.written = int(counted["worker.datapoints_written"])
    for name, pairs in _stored(redis_conn, expected).items():
        sent, got = Counter(expected[name]), Counter(tuple(pair) for pair in pairs)
        figures.lost += sum((sent - got).values())
        figures.duplicated += sum((got - sent).values())
    for protocol in PROTOCOLS:
        stats = figures.protocols[protocol] = ProtocolFigures(hostile=per_protocol)
        stats.valid_sent = sum(len(pairs) for pairs in valid[protocol].sent.values())
        stats.kept_sent = sum(len(item.kept) for item in inputs[protocol])
        stats.received = int(counted[f"listen.{protocol}_datapoints_received"])
        stats.rejected_expected = sum(item.frames + item.elements for item in inputs[protocol])
        stats.rejected_counted = int(counted[f"listen.{protocol}_frames_rejected"])
        stats.shed = int(counted[f"listen.{protocol}_chunks_dropped"])
        for item in inputs[protocol]:
            figures.reasons_expected.update(item.reasons)
    figures.protocols["pickle"].rejected_counted += int(counted["listen.pickle_datapoints_rejected"])
    figures.reasons_counted = Counter({name.removeprefix("listen.rejected."): int(value)
                                       for name, value in counted.items() if name.startswith("listen.rejected.")})
    return figures
