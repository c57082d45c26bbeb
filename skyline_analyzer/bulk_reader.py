"""MGET replies read straight into a reused buffer (docs/analyzer-optimizations.md#the-bulk-reader).

A worker reads every series of its slice once a run, 250 keys (about 5.4 MB) per MGET. Through redis-py
each reply is received in 64 kB pieces, copied into hiredis' buffer and copied again into one ``bytes``
object per value, all with the GIL held: about 11 µs of the worker's CPU per metric, more than the decode.
:class:`BulkReader` receives the reply into a buffer it keeps, parses the RESP framing in place and hands
out :class:`memoryview` slices of it: one copy (the kernel's), no object per byte string.

A value is valid until the second :meth:`BulkReader.mget` after the one that returned it (two buffers
alternate, so a chunk can be analysed while the next is read); the reader then releases the old views
(using one afterwards raises ``ValueError``) and, if anything still exports the buffer (a numpy array
made from a view), leaves that buffer to its holder and takes a fresh one, so data never changes under
a reader.

The reply is input like any other: every header line is bounded (:data:`MAX_LINE`), a length must be
digits and at most :data:`MAX_VALUE`, each value must end with CRLF and the element count must be the
number of keys asked. Anything
else raises :class:`redis.exceptions.InvalidResponse`, an error reply :class:`redis.exceptions.ResponseError`;
either drops the connection (its stream can no longer be trusted) and the next call reconnects. A
connection that fails is reconnected and the command sent once more (as ``connections.COMMAND_RETRIES``),
then :class:`redis.exceptions.ConnectionError` is raised.
Only a single Redis is read this way; a Redis Cluster goes through :mod:`skyline_analyzer.storage`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import redis.exceptions

from skyline_analyzer.config import Settings
from skyline_analyzer.connections import COMMAND_RETRIES
from skyline_analyzer.excerpt import escape

#: Longest header line accepted (``$`` and a length of at most 20 digits, or a short error message).
MAX_LINE = 512
#: Size a buffer starts at; it grows to the largest reply read.
FIRST_SIZE = 1 << 20
#: A buffer grown beyond this for one reply is dropped after it, so one huge key does not pin its memory.
KEEP_SIZE = 64 << 20
#: Largest value length believed: Redis's own limit on a string (``proto-max-bulk-len``'s default). A
#: longer length is a broken or hostile stream, refused before any memory is taken for it.
MAX_VALUE = 512 << 20
#: Largest single receive.
RECEIVE = 1 << 20
_CRLF = b"\r\n"
_NIL = b"$-1"


class Reply(list):
    """The values of one MGET (:class:`memoryview` slices, None for a missing key), and where they lie:
    ``starts[i]`` is the offset of value ``i`` in ``buffer`` (None for a missing key).

    Values of one length follow one another in the reply at a fixed stride (a value, its CRLF and the next
    value's ``$<length>`` line), so the decoder can read a run of them as one strided array of the buffer
    instead of joining copies of them (:func:`skyline_analyzer.codec.decode_many`). Valid as the values are.
    """

    buffer: bytearray
    starts: list[int | None]


class BulkReader:
    """MGET over a connection of its own to the single Redis the settings name (no cluster)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sock: socket.socket | None = None
        self._buffers = [bytearray(FIRST_SIZE), bytearray(FIRST_SIZE)]
        self._views: list[list[memoryview]] = [[], []]
        self._turn = 0
        # The reply being read: its buffer and how many bytes of it have arrived.
        self._buf = self._buffers[0]
        self._end = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def mget(self, names: Sequence[str]) -> list[memoryview | None]:
        """The values of ``names`` (None where a key does not exist or is not a string), in order, as a
        :class:`Reply` (an empty list for no names)."""
        if not names:
            return []
        command = _command([b"MGET", *(name.encode() for name in names)])
        # One turn per call, whatever the attempts: a retry must not release the previous call's values.
        self._take_turn()
        for attempt in range(COMMAND_RETRIES + 1):
            try:
                self._send(command)
                return self._reply(len(names))
            except (ConnectionError, OSError) as exc:
                self.close()
                if attempt == COMMAND_RETRIES:
                    raise redis.exceptions.ConnectionError(f"MGET failed: {exc}") from exc
            except redis.exceptions.RedisError:
                # After a refusal or a malformed reply the stream's position is unknown: start afresh.
                self.close()
                raise
        raise AssertionError("unreachable")

    # --- the connection ---------------------------------------------------------------------------

    def _send(self, command: bytes) -> None:
        if self._sock is None:
            self._sock = self._connect()
        self._sock.sendall(command)

    def _connect(self) -> socket.socket:
        settings = self._settings
        if settings.REDIS_HOST:
            sock = socket.create_connection((settings.REDIS_HOST, settings.REDIS_PORT))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(settings.REDIS_SOCKET_PATH)
            except OSError:
                sock.close()
                raise
        if settings.REDIS_PASSWORD:
            try:
                _authenticate(sock, str(settings.REDIS_PASSWORD))
            except BaseException:
                sock.close()
                raise
        return sock

    # --- one reply ----------------------------------------------------------------------------------

    def _take_turn(self) -> None:
        """Take the other buffer, once nothing that was read into it before can see it change."""
        turn = self._turn = 1 - self._turn
        for view in self._views[turn]:
            view.release()
        self._views[turn] = []
        try:
            # Resizing fails while anything (a view, a numpy array made from one) still exports the buffer.
            self._buffers[turn].append(0)
            del self._buffers[turn][-1]
        except BufferError:
            self._buffers[turn] = bytearray(FIRST_SIZE)

    def _reply(self, count: int) -> Reply:
        self._buf, self._end = self._buffers[self._turn], 0
        line, pos = self._line(0)
        if line[:1] == b"-":
            raise redis.exceptions.ResponseError(_shown(line[1:]))
        if line[:1] != b"*" or _length(line) != count:
            raise redis.exceptions.InvalidResponse(f"MGET of {count} keys answered {_shown(line)}")
        spans: list[tuple[int, int] | None] = []
        for _ in range(count):
            line, start = self._line(pos)
            if line == _NIL:
                spans.append(None)
                pos = start
                continue
            if line[:1] != b"$":
                raise redis.exceptions.InvalidResponse(f"MGET element answered {_shown(line)}")
            size = _length(line)
            if size > MAX_VALUE:
                raise redis.exceptions.InvalidResponse(f"a value of {size} bytes: more than Redis can hold")
            pos = start + size
            self._fill(pos + 2)
            if self._buf[pos : pos + 2] != _CRLF:
                raise redis.exceptions.InvalidResponse("MGET value not followed by CRLF")
            spans.append((start, pos))
            pos += 2
        if pos != self._end:
            raise redis.exceptions.InvalidResponse(f"{self._end - pos} bytes after the MGET reply")
        whole = memoryview(self._buf)
        values = Reply(None if span is None else whole[span[0] : span[1]] for span in spans)
        values.buffer = self._buf
        values.starts = [None if span is None else span[0] for span in spans]
        self._views[self._turn] = [view for view in values if view is not None]
        whole.release()
        if len(self._buf) > KEEP_SIZE:
            # The views keep the big buffer alive as long as they are used; the next reply starts small.
            self._buffers[self._turn] = bytearray(FIRST_SIZE)
        return values

    def _line(self, pos: int) -> tuple[bytes, int]:
        """The header line starting at ``pos`` (without CRLF) and the position after it."""
        while True:
            found = self._buf.find(_CRLF, pos, min(self._end, pos + MAX_LINE + 2))
            if found >= 0:
                return bytes(self._buf[pos:found]), found + 2
            if self._end - pos >= MAX_LINE + 2:
                raise redis.exceptions.InvalidResponse(f"a reply line longer than {MAX_LINE} bytes")
            self._fill(self._end + 1)

    def _fill(self, need: int) -> None:
        """Receive until ``need`` bytes of the reply have arrived, growing the buffer when it is full."""
        assert self._sock is not None
        while self._end < need:
            if len(self._buf) < need or self._end == len(self._buf):
                grown = bytearray(max(need, len(self._buf) * 3 // 2))
                grown[: self._end] = self._buf[: self._end]
                self._buf = self._buffers[self._turn] = grown
            with memoryview(self._buf) as free:
                received = self._sock.recv_into(free[self._end :], min(RECEIVE, len(self._buf) - self._end))
            if not received:
                raise ConnectionError("Redis closed the connection")
            self._end += received


def _authenticate(sock: socket.socket, password: str) -> None:
    sock.sendall(_command([b"AUTH", password.encode()]))
    answer = b""
    while _CRLF not in answer:
        if len(answer) > MAX_LINE:
            raise redis.exceptions.InvalidResponse(f"a reply line longer than {MAX_LINE} bytes")
        received = sock.recv(MAX_LINE + 2)
        if not received:
            raise ConnectionError("Redis closed the connection")
        answer += received
    line, _, rest = answer.partition(_CRLF)
    if line != b"+OK" or rest:
        raise redis.exceptions.AuthenticationError(f"AUTH refused: {_shown(line)}")


def _command(parts: Sequence[bytes]) -> bytes:
    pieces = [b"*%d\r\n" % len(parts)]
    for part in parts:
        pieces.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(pieces)


def _length(line: bytes) -> int:
    """The count or length after a header line's type byte (digits only: no sign, space or underscore)."""
    digits = line[1:]
    if not digits.isdigit() or len(digits) > 20:
        raise redis.exceptions.InvalidResponse(f"not a length: {_shown(line)}")
    return int(digits)


def _shown(line: bytes) -> str:
    return escape(line.decode("utf-8", "replace"))
