"""Carbon's pickle protocol (carbon-relay): length-prefixed frames on a TCP connection.

A frame is a 4-byte unsigned big-endian length and that many bytes of pickle holding a list of
``(name, (timestamp, value))``. Python 2 and 3 relays, every pickle protocol. The payload is loaded by
:mod:`.unpickler`, which can build nothing but plain data.

Per input: a length prefix over ``MAX_PICKLE_FRAME_BYTES`` closes the connection without reading or
allocating the body; a payload that does not load, or is not a list, is refused whole; inside a frame that
loads, a bad element drops alone (as carbon's own receiver does). Anything unexpected while one frame or
element is handled is caught there, counted as ``unexpected_error``, and the next one is read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from skyline_analyzer.exceptions import BadInput, Rejection, UnsafePickleError
from skyline_analyzer.excerpt import escape
from skyline_analyzer.horizon.datapoints import Datapoint, Refused, Validator, unexpected
from skyline_analyzer.horizon.rejections import Rejections
from skyline_analyzer.horizon.unpickler import loads

LENGTH = struct.Struct("!I")
#: Elements checked before they are handed on: a frame of memoized references to one element (a few
#: bytes each) then never exists as hundreds of thousands of datapoints at once.
SLICE = 512


def load_frame(payload: bytes) -> list[Any] | tuple[Any, ...]:
    """The elements of one frame's payload; raise :class:`BadInput` when it is not a pickled list."""
    try:
        obj = loads(payload)
    except UnsafePickleError as exc:
        raise BadInput(Rejection.PICKLE_UNSAFE, f"pickle refused: {escape(str(exc))}") from None
    except Exception as exc:
        # Whatever the C unpickler raises (truncated, unknown opcode, an integer of too many digits...).
        raise BadInput(Rejection.PICKLE_UNREADABLE,
                       f"pickle unreadable: {type(exc).__name__}: {escape(str(exc))}") from None
    if type(obj) not in (list, tuple):
        raise BadInput(Rejection.NOT_A_LIST, f"pickle payload is a {type(obj).__name__}, not a list of datapoints")
    return obj


def check_elements(elements: Iterable[Any], validator: Validator, refused: Refused,
                   sink: Callable[[list[Datapoint]], None]) -> int:
    """Hand the valid elements to ``sink`` (in slices), add the others to ``refused``; the number accepted."""
    accepted = 0
    good: list[Datapoint] = []
    for item in elements:
        try:
            good.append(validator.datapoint(item))
        except BadInput as exc:
            refused.add(exc)
        except Exception as exc:
            refused.add(unexpected(exc, "a pickle element", item))
        if len(good) >= SLICE:
            sink(good)
            accepted += len(good)
            good = []
    if good:
        sink(good)
        accepted += len(good)
    return accepted


def decode_pickle(payload: bytes, validator: Validator) -> tuple[list[Datapoint], Refused]:
    """The valid datapoints of one payload and what was refused in it; raise :class:`BadInput` for the frame."""
    good: list[Datapoint] = []
    refused = Refused()
    check_elements(load_frame(payload), validator, refused, good.extend)
    return good, refused


class PickleReceiver:
    """One connection's frames: :meth:`feed` it the bytes read; datapoints go to ``sink``, refusals are counted."""

    def __init__(self, validator: Validator, sink: Callable[[list[Datapoint]], None], rejections: Rejections,
                 peer: str, max_frame_bytes: int) -> None:
        self.validator = validator
        self.sink = sink
        self.rejections = rejections
        self.peer = peer
        self.max_frame_bytes = max_frame_bytes
        self.accepted = 0

    def feed(self, buffer: bytearray) -> int:
        """Handle every whole frame at the start of ``buffer``; the bytes used, or -1 to close the connection."""
        offset = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - offset >= LENGTH.size:
                (length,) = LENGTH.unpack_from(buffer, offset)
                if length > self.max_frame_bytes:
                    self.rejections.frame(BadInput(
                        Rejection.FRAME_TOO_LONG,
                        f"length prefix {length} exceeds MAX_PICKLE_FRAME_BYTES {self.max_frame_bytes}; closing"),
                        self.peer)
                    return -1
                end = offset + LENGTH.size + length
                if len(buffer) < end:
                    break
                payload = bytes(view[offset + LENGTH.size : end])
                offset = end
                self.frame(payload)
        finally:
            view.release()
        return offset

    def frame(self, payload: bytes) -> None:
        """One frame's payload: its good elements accepted, the rest counted; never raises."""
        refused = Refused()
        try:
            self.accepted += check_elements(load_frame(payload), self.validator, refused, self.sink)
        except BadInput as exc:
            self.rejections.frame(exc, self.peer)
            return
        except Exception as exc:
            self.rejections.frame(unexpected(exc, "a pickle frame", payload), self.peer)
            return
        self.rejections.elements(refused, self.peer)

    def end(self, tail: bytes, eof: bool) -> None:
        """The connection closed (``eof``: by the client) with ``tail`` unread: a partial frame is refused."""
        if tail:
            self.rejections.frame(BadInput(
                Rejection.FRAME_TRUNCATED, f"connection closed inside a frame ({len(tail)} bytes unread)"), self.peer)
