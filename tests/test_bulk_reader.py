"""The worker's MGET reader: the values redis-py reads, views that never change under their holder, and
every malformed reply refused without losing the reader (against a real redis-server, and against a real
socket server answering scripted bytes)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis

from skyline_analyzer import bulk_reader, config
from skyline_analyzer.bulk_reader import BulkReader, Reply
from tests import support
from tests.redis_server import RedisServer

BIG = bytes(range(256)) * (3 * 4096 + 7)  # 3 MB: more than a buffer starts with


def test_values_are_redis_py_values(redis_conn: redis.Redis, load_settings: Callable[..., config.Settings]) -> None:
    stored = {
        "metrics.empty": b"",
        "metrics.framing": b"$-1\r\n*3\r\n\r\n-ERR no\r\n",
        "metrics.big": BIG,
        "metrics.unicode é ☃": b"\x92\xce\x00\x00\x00\x01\x01",
    }
    stored.update({f"metrics.n{i}": bytes([i % 256]) * (i * 37 % 5000) for i in range(1200)})
    redis_conn.mset(stored)
    redis_conn.hset("metrics.a_hash", "field", "value")
    names = [*stored, "metrics.a_hash", "metrics.missing"]
    reader = BulkReader(load_settings())
    try:
        for chunk in (names, names[:3], names[5:505], ["metrics.missing"]):
            values = reader.mget(chunk)
            assert [None if v is None else bytes(v) for v in values] == redis_conn.mget(chunk)
            # Where each value lies in the reply's buffer (the decoder reads runs of them in place).
            assert isinstance(values, Reply) and len(values.starts) == len(chunk)
            for value, start in zip(values, values.starts, strict=True):
                assert (value is None) == (start is None)
                if value is not None:
                    assert values.buffer[start : start + len(value)] == value
        assert reader.mget([]) == []
    finally:
        reader.close()


def test_a_view_lives_until_the_second_next_read_and_held_data_never_changes(
    redis_conn: redis.Redis, load_settings: Callable[..., config.Settings]
) -> None:
    redis_conn.mset({"metrics.a": b"a" * 1000, "metrics.b": b"b" * 1000})
    reader = BulkReader(load_settings())
    try:
        first = reader.mget(["metrics.a", "metrics.b"])
        held = np.frombuffer(first[0], dtype=np.uint8)  # exports the first buffer beyond the reader's views
        redis_conn.mset({"metrics.a": b"x" * 1000, "metrics.b": b"y" * 1000})
        second = reader.mget(["metrics.b", "metrics.a"])
        assert bytes(first[1]) == b"b" * 1000  # one read later: still valid
        third = reader.mget(["metrics.a", "metrics.b"])  # takes the first buffer's turn
        with pytest.raises(ValueError):
            bytes(first[1])  # released: a stale view cannot be read
        assert held.tobytes() == b"a" * 1000  # the buffer it holds was left to it, not overwritten
        assert [bytes(v) for v in second] == [b"y" * 1000, b"x" * 1000]
        assert [bytes(v) for v in third] == [b"x" * 1000, b"y" * 1000]
        del held
        reader.mget(["metrics.a"])
        reader.mget(["metrics.a"])  # the turn whose buffer was replaced: used again without trouble
    finally:
        reader.close()


def test_password(own_redis: Callable[..., RedisServer], tmp_path: Path) -> None:
    server = own_redis(password="s3cret")
    server.client().set("metrics.a", b"1")

    def reader(password: str | None) -> BulkReader:
        return BulkReader(_settings(tmp_path, REDIS_SOCKET_PATH=server.socket_path, REDIS_PASSWORD=password))

    good = reader("s3cret")
    assert [bytes(v) for v in good.mget(["metrics.a"])] == [b"1"]
    good.close()
    with pytest.raises(redis.AuthenticationError):
        reader("wrong").mget(["metrics.a"])
    with pytest.raises(redis.ResponseError, match="NOAUTH"):
        reader(None).mget(["metrics.a"])


def test_reconnects_once_then_reports(own_redis: Callable[..., RedisServer], tmp_path: Path) -> None:
    server = own_redis()
    server.client().set("metrics.a", b"1")
    reader = BulkReader(_settings(tmp_path, REDIS_SOCKET_PATH=server.socket_path))
    assert [bytes(v) for v in reader.mget(["metrics.a"])] == [b"1"]
    server.restart()  # the reader's socket is now dead: the read is retried on a new one
    server.client().set("metrics.a", b"2")
    assert [bytes(v) for v in reader.mget(["metrics.a"])] == [b"2"]
    server.stop()
    with pytest.raises(redis.ConnectionError):
        reader.mget(["metrics.a"])
    server.start()
    server.client().set("metrics.a", b"3")
    assert [bytes(v) for v in reader.mget(["metrics.a"])] == [b"3"]
    reader.close()


# --- a real server that answers scripted bytes -------------------------------------------------------

VALID = b"*2\r\n$3\r\nabc\r\n$-1\r\n"


class Closing(bytes):
    """A scripted reply after which the server closes the connection."""


@contextmanager
def scripted(replies: list[bytes], step: int = 0) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on a loopback port of its own answering each command received with the next reply (sent
    ``step`` bytes at a time when ``step``; after a :class:`Closing` reply the connection is closed); yields
    the port and the commands received."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # the kernel picks a free port: no window for another process to take it
    listener.listen()
    listener.settimeout(10)
    received: list[bytes] = []
    pending = list(replies)

    def serve() -> None:
        while pending:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while pending:
                    data = conn.recv(65536)
                    if not data:
                        break
                    received.append(data)
                    reply = pending.pop(0)
                    for lo in range(0, len(reply), step or len(reply)):
                        conn.sendall(reply[lo : lo + (step or len(reply))])
                    if isinstance(reply, Closing):
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()
        thread.join(10)


MALFORMED = [
    (b"*3\r\n$3\r\nabc\r\n$-1\r\n$-1\r\n", redis.exceptions.InvalidResponse, "answered"),  # count != keys
    (b"*-1\r\n", redis.exceptions.InvalidResponse, "not a length"),
    (b"*2\r\n$3x\r\nabc\r\n$-1\r\n", redis.exceptions.InvalidResponse, "not a length"),
    (b"*2\r\n$-2\r\n$-1\r\n", redis.exceptions.InvalidResponse, "not a length"),
    (b"*2\r\n$+3\r\nabc\r\n$-1\r\n", redis.exceptions.InvalidResponse, "not a length"),
    (b"*2\r\n$3\r\nabcd\r\n$-1\r\n", redis.exceptions.InvalidResponse, "CRLF"),
    (b"*2\r\n:1\r\n$-1\r\n", redis.exceptions.InvalidResponse, "element"),
    (b"*2\r\n$" + b"9" * 600 + b"\r\n", redis.exceptions.InvalidResponse, "longer than"),
    (b"*2\r\n$" + b"9" * 20 + b"\r\nabc\r\n$-1\r\n", redis.exceptions.InvalidResponse, "more than Redis can hold"),
    (VALID + b"+OK\r\n", redis.exceptions.InvalidResponse, "after the MGET reply"),
    (b"-ERR \x1b[31mred\r\n", redis.exceptions.ResponseError, r"ERR \\x1b\[31mred"),
]


@pytest.mark.parametrize(("reply", "error", "message"), MALFORMED)
def test_a_malformed_reply_is_refused_and_the_next_read_reconnects(
    tmp_path: Path, reply: bytes, error: type[Exception], message: str
) -> None:
    with scripted([reply, VALID]) as (port, received):
        reader = BulkReader(_settings(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=port))
        with pytest.raises(error, match=message) as caught:
            reader.mget(["metrics.a", "metrics.b"])
        assert len(str(caught.value)) < 200
        assert [None if v is None else bytes(v) for v in reader.mget(["metrics.a", "metrics.b"])] == [b"abc", None]
        reader.close()
    assert received[0] == b"*3\r\n$4\r\nMGET\r\n$9\r\nmetrics.a\r\n$9\r\nmetrics.b\r\n"


def test_a_reply_in_small_pieces_and_a_connection_lost_mid_value(tmp_path: Path) -> None:
    value = bytes(range(256)) * 20
    whole = b"*2\r\n$%d\r\n%s\r\n$-1\r\n" % (len(value), value)
    with scripted([whole, Closing(whole[:100]), Closing(b""), whole], step=7) as (port, _):
        reader = BulkReader(_settings(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=port))
        assert [None if v is None else bytes(v) for v in reader.mget(["metrics.a", "metrics.b"])] == [value, None]
        # The connection closes mid-value, and closes again on the retry: the error surfaces.
        with pytest.raises(redis.ConnectionError):
            reader.mget(["metrics.a", "metrics.b"])
        assert [None if v is None else bytes(v) for v in reader.mget(["metrics.a", "metrics.b"])] == [value, None]
        reader.close()


def test_a_retried_read_leaves_the_previous_values_valid(tmp_path: Path) -> None:
    """A connection lost mid-reply is retried into the same buffer: the values of the read before, which the
    caller may still be working on, are not released by the retry."""
    other = b"*2\r\n$3\r\nxyz\r\n$-1\r\n"
    with scripted([VALID, Closing(other[:9]), other]) as (port, received):
        reader = BulkReader(_settings(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=port))
        first = reader.mget(["metrics.a", "metrics.b"])
        second = reader.mget(["metrics.a", "metrics.b"])
        assert bytes(first[0]) == b"abc" and bytes(second[0]) == b"xyz" and second[1] is None
        assert len(received) == 3
        reader.close()


def test_a_buffer_grown_for_a_huge_reply_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_reader, "FIRST_SIZE", 1024)
    monkeypatch.setattr(bulk_reader, "KEEP_SIZE", 4096)
    big = b"*1\r\n$10000\r\n" + b"z" * 10000 + b"\r\n"
    with scripted([big, big, VALID]) as (port, _):
        reader = BulkReader(_settings(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=port))
        first = reader.mget(["metrics.a"])
        assert all(len(buffer) == bulk_reader.FIRST_SIZE for buffer in reader._buffers)
        assert bytes(first[0]) == b"z" * 10000  # the views keep the grown buffer they point into
        reader.mget(["metrics.a"])
        reader.mget(["metrics.a", "metrics.b"])
        reader.close()


def _settings(tmp_path: Path, **overrides: object) -> config.Settings:
    directory = tmp_path / f"settings{len(list(tmp_path.glob('settings*')))}"
    directory.mkdir()
    return support.load_settings(directory, **overrides)
