"""Horizon's limits against a real Horizon and Redis: what an attacker's idle connections, partial frames and
huge names cost, and that a real client is still served (docs/horizon.md, "Limits")."""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from skyline_analyzer.codec import decode_pairs
from tests.horizon_process import HorizonProcess, horizon_settings, rss_bytes

MB = 1_000_000
MIB = 1 << 20


def frame(datapoints: list) -> bytes:
    payload = pickle.dumps(datapoints, protocol=2)
    return struct.pack("!I", len(payload)) + payload


@pytest.fixture
def horizon(make_settings, request) -> Iterator[HorizonProcess]:
    nofile = getattr(request, "param", None)
    process = HorizonProcess(horizon_settings(make_settings), nofile=nofile)
    yield process
    assert process.stop() == 0


def send_and_wait(horizon: HorizonProcess, redis_conn, name: str, count: int, timeout: float = 20.0) -> int:
    """Send ``count`` datapoints of ``name`` over pickle; how many Redis holds once all arrived or the timeout."""
    now = int(time.time())
    with socket.create_connection(horizon.address("PICKLE_PORT"), timeout=10) as client:
        client.sendall(frame([(name, (now - count + n, float(n))) for n in range(count)]))
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        raw = redis_conn.get(f"metrics.{name}")
        stored = len(decode_pairs(raw)) if raw else 0
        if stored >= count:
            break
        time.sleep(0.1)
    return stored


def settle(pid: int, seconds: float = 1.0) -> int:
    """RSS once the listener has had ``seconds`` to handle what was sent."""
    time.sleep(seconds)
    return rss_bytes(pid)


@pytest.mark.parametrize("horizon", [1024], indirect=True)
def test_1200_idle_connections_under_nofile_1024_do_not_keep_a_real_client_out(horizon, redis_conn) -> None:
    idle = []
    try:
        for _ in range(1200):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(horizon.address("PICKLE_PORT"), timeout=10))
        time.sleep(1.0)
        assert send_and_wait(horizon, redis_conn, "real.client", 100) == 100
    finally:
        for sock in idle:
            sock.close()
    log = horizon.log.read_text()
    assert "RLIMIT_NOFILE 1024 leaves descriptors for" in log, "the listener fitted its limit to the descriptors"
    assert horizon.process.poll() is None
    horizon.stop()
    counted = horizon.counters()
    assert counted["listen.pickle_connections_evicted"] > 0
    assert counted["agent.child_deaths"] == 0


def test_300_idle_partial_frames_of_1_mib_add_under_64_mb(horizon, redis_conn) -> None:
    listener = horizon.pid_of("pickle listener serving")
    before = settle(listener, 0.5)
    held = []
    try:
        for _ in range(300):
            sock = socket.create_connection(horizon.address("PICKLE_PORT"), timeout=10)
            held.append(sock)
            with contextlib.suppress(OSError):  # the listener may close it while it is sent
                sock.sendall(struct.pack("!I", MIB) + b"\x80" * (MIB - 1))
        grown = settle(listener) - before
        assert send_and_wait(horizon, redis_conn, "served.meanwhile", 100) == 100
    finally:
        for sock in held:
            sock.close()
    assert grown < 64 * MB, f"the listener grew {grown / MB:.0f} MB"
    horizon.stop()
    counted = horizon.counters()
    assert counted["listen.pickle_connections_overflowed"] > 200
    assert counted["listen.rejected.frame_truncated"] == 300, "every partial frame counted once"


def test_300_names_of_1_mb_are_refused_within_64_mb(horizon, redis_conn) -> None:
    processes = {name: horizon.pid_of(announcement) for name, announcement in (
        ("pickle listener", "pickle listener serving"), ("worker 0", "worker 0 started"),
        ("worker 1", "worker 1 started"))}
    before = {name: settle(pid, 0.5) for name, pid in processes.items()}
    now = int(time.time())
    for round_ in range(2):  # twice: a cache that kept them would grow pass after pass
        with socket.create_connection(horizon.address("PICKLE_PORT"), timeout=30) as client:
            for n in range(300):
                name = f"huge.{round_}.{n}." + "x" * MB
                client.sendall(frame([(name, (now, 1.0)), (f"fine.{n % 3}", (now - round_ * 300 - n, 1.0))]))
    assert send_and_wait(horizon, redis_conn, "after.huge.names", 10) == 10
    grown = {name: settle(pid, 0.2) - before[name] for name, pid in processes.items()}
    assert all(growth < 64 * MB for growth in grown.values()), grown
    horizon.stop()
    counted = horizon.counters()
    assert counted["listen.rejected.name_too_long"] == 600
    assert counted["listen.pickle_datapoints_received"] == 600 + 10
    assert sum(len(decode_pairs(redis_conn.get(f"metrics.fine.{k}"))) for k in range(3)) == 600
