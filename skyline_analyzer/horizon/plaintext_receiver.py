"""Carbon's plaintext protocol: ``name value timestamp`` lines on a TCP connection (beyond v1.2.8).

Several lines per write, ``\\r\\n`` accepted, blank lines ignored, and a last line without its newline
accepted when the client closes (as carbon does). A line over :data:`MAX_LINE_BYTES` is refused once and
skipped to its newline without being kept. Integer text stays an int (``1700000000``), anything with a point
or an exponent is a float; number text over :data:`MAX_NUMBER_BYTES` is refused before it is converted
(``int()`` of thousands of digits is quadratic, and refuses over 4,300). Each line is one input: a bad one
is refused and counted alone, and anything unexpected while one line is handled is caught there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from skyline_analyzer.exceptions import BadInput, Rejection
from skyline_analyzer.horizon.datapoints import Datapoint, Refused, Validator, number, unexpected
from skyline_analyzer.horizon.rejections import Rejections

#: Longest line (twisted's LineReceiver default, which carbon uses).
MAX_LINE_BYTES = 16384
#: Longest number text: far over the 24 characters of any float's repr or any int msgpack can encode.
MAX_NUMBER_BYTES = 64
#: Datapoints collected from one read before they are handed on.
SLICE = 512

_INT_TEXT = re.compile(rb"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def text_number(token: bytes, what: str) -> int | float:
    """The number ``token`` spells; raise :class:`BadInput`."""
    if len(token) > MAX_NUMBER_BYTES:
        raise BadInput(Rejection.NOT_A_NUMBER, f"{what} is over {MAX_NUMBER_BYTES} characters", token)
    # int() and float() would also take '1_000', 'nan' and 'infinity'; carbon's senders never write those.
    if _INT_TEXT.fullmatch(token):
        return number(int(token), what)
    if _FLOAT_TEXT.fullmatch(token):
        return number(float(token), what)
    raise BadInput(Rejection.NOT_A_NUMBER, f"{what} is not a number", token)


def decode_line(line: bytes, validator: Validator) -> Datapoint:
    """The datapoint of one line ``name value timestamp`` (its newline removed); raise :class:`BadInput`."""
    fields = line.split()
    if len(fields) != 3:
        raise BadInput(Rejection.LINE_FIELDS, "line does not have 3 fields 'name value timestamp'", line)
    name, value, timestamp = fields
    return validator.name(name), (text_number(timestamp, "timestamp"), text_number(value, "value"))


class PlaintextReceiver:
    """One connection's lines: :meth:`feed` it the bytes read; datapoints go to ``sink``, refusals are counted."""

    def __init__(self, validator: Validator, sink: Callable[[list[Datapoint]], None], rejections: Rejections,
                 peer: str) -> None:
        self.validator = validator
        self.sink = sink
        self.rejections = rejections
        self.peer = peer
        self.accepted = 0
        self.discarding = False  # inside an over-long line: skip to its newline

    def feed(self, buffer: bytearray) -> int:
        """Handle every whole line in ``buffer``; the bytes used."""
        offset = 0
        good: list[Datapoint] = []
        refused = Refused()
        while True:
            newline = buffer.find(b"\n", offset)
            if newline < 0:
                if len(buffer) - offset > MAX_LINE_BYTES:
                    if not self.discarding:
                        refused.add(BadInput(Rejection.LINE_TOO_LONG, f"line longer than {MAX_LINE_BYTES} bytes"))
                    self.discarding = True
                    offset = len(buffer)
                break
            start, offset = offset, newline + 1
            if self.discarding:
                self.discarding = False
                continue
            if newline - start > MAX_LINE_BYTES + 1:
                refused.add(BadInput(Rejection.LINE_TOO_LONG, f"line longer than {MAX_LINE_BYTES} bytes"))
                continue
            self._line(bytes(buffer[start:newline]), good, refused)
            if len(good) >= SLICE:
                self._accept(good)
                good = []
        self._accept(good)
        self.rejections.frames(refused, self.peer)
        return offset

    def _line(self, line: bytes, good: list[Datapoint], refused: Refused) -> None:
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        try:
            good.append(decode_line(line, self.validator))
        except BadInput as exc:
            refused.add(exc)
        except Exception as exc:
            refused.add(unexpected(exc, "a plaintext line", line))

    def _accept(self, good: list[Datapoint]) -> None:
        if good:
            self.sink(good)
            self.accepted += len(good)

    def end(self, tail: bytes, eof: bool) -> None:
        """The connection closed (``eof``: by the client) with ``tail`` unread.

        At the client's close a last line without its newline is a line; on any other close it is cut off.
        """
        if self.discarding or not tail.strip():
            return
        if not eof:
            self.rejections.frame(BadInput(Rejection.FRAME_TRUNCATED,
                                           f"connection closed inside a line ({len(tail)} bytes unread)"), self.peer)
            return
        good: list[Datapoint] = []
        refused = Refused()
        self._line(tail, good, refused)
        self._accept(good)
        self.rejections.frames(refused, self.peer)
