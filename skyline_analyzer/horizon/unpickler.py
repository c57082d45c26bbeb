"""A pickle loader for carbon's pickle protocol that can build nothing but plain data, at a bounded cost.

Carbon relays send ``[(name, (timestamp, value)), ...]``: lists, tuples, strings and numbers. Every way a
pickle can run code goes through a *global* (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) or a persistent id:
REDUCE, BUILD and NEWOBJ only act on a callable or class some earlier opcode fetched. :class:`PlainUnpickler`
refuses every global and persistent id at the moment the opcode is read, so a ``__reduce__`` payload stops
at its first opcode that names a callable, before anything is called. The original's carbon "SafeUnpickler"
allowed ``copy_reg._reconstructor`` and ``object``; carbon never sends those, so here the allow-list is empty.

Before the C unpickler sees a payload, :func:`scan` walks its opcodes once and refuses what would make
loading cost more than the payload's size: the C unpickler (CPython before 3.14, gh-115952) grows its memo
table to twice any PUT or LONG_BINPUT index, so 40 bytes asking for index 2**31 cost gigabytes and tens of
seconds; and a counted string or bytes opcode allocates its stated length before reading it. A pickler
numbers memo entries from 0, one per PUT, so an index is never above the opcode's offset; a counted length
never runs past the payload's end. The scan also refuses every code-running opcode outright.

Python 2 ``str`` objects (carbon-relay under Python 2) are loaded as ``bytes``: a name that is not UTF-8
then fails only its own element's check (:mod:`.datapoints`), not the whole frame.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any, NoReturn

from skyline_analyzer.exceptions import UnsafePickleError
from skyline_analyzer.excerpt import escape

_PUT, _LONG_BINPUT, _STOP = ord("p"), ord("r"), ord(".")
_REFUSED = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "REDUCE", "BUILD",
            "NEWOBJ", "NEWOBJ_EX"}
#: Digits of a PUT index: more than any payload has bytes.
_MAX_INDEX_DIGITS = 12
_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}
#: Width of the count of a counted argument, signed for BINSTRING and LONG4.
_COUNT_WIDTHS = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}
# _SKIP[opcode]: the bytes of a fixed-size argument (0 for none), the scan's fast path; or one of these.
_SPECIAL, _SHORT_COUNTED, _COUNTED_4U, _MEMO_4 = -1, -2, -3, -4


def _tables() -> tuple[list[int], dict[int, tuple[int, bool]]]:
    skip = [_SPECIAL] * 256
    counted: dict[int, tuple[int, bool]] = {}
    for op in pickletools.opcodes:
        code, arg = ord(op.code), op.arg
        if op.name in _REFUSED or code == _STOP:
            continue
        if code == _LONG_BINPUT:
            skip[code] = _MEMO_4
            continue
        if arg is None:
            skip[code] = 0
        elif arg.n >= 0:
            skip[code] = arg.n
        elif arg.n in _COUNT_WIDTHS:
            width = _COUNT_WIDTHS[arg.n]
            counted[code] = (width, arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
            if width == 1:
                skip[code] = _SHORT_COUNTED
            elif arg.n == pickletools.TAKEN_FROM_ARGUMENT4U:
                skip[code] = _COUNTED_4U
    return skip, counted


_SKIP, _COUNTED = _tables()


def scan(payload: bytes) -> None:
    """Refuse a payload whose loading would cost more than its size, or that names code (see the module).

    Raises
    ------
    UnsafePickleError
        A code-running opcode.
    pickle.UnpicklingError
        An unknown opcode, a memo index above its offset, a length past the end, no STOP or bytes after it.
    """
    pos, end, skip = 0, len(payload), _SKIP
    while pos < end:
        size = skip[payload[pos]]
        if size >= 0:
            pos += 1 + size
        elif size == _SHORT_COUNTED and pos + 1 < end:
            pos += 2 + payload[pos + 1]
        elif size == _COUNTED_4U and pos + 5 <= end:
            # A count past the end ends the loop: "truncated", and nothing was allocated.
            pos += 5 + int.from_bytes(payload[pos + 1 : pos + 5], "little")
        elif size == _MEMO_4:
            if int.from_bytes(payload[pos + 1 : pos + 5], "little") > pos:
                raise pickle.UnpicklingError(f"memo index above its offset {pos}")
            pos += 5
        else:
            pos = _special(payload, pos, end)
            if pos < 0:
                return
    raise pickle.UnpicklingError("pickle data was truncated")


def _special(payload: bytes, start: int, end: int) -> int:
    """Check the opcode at ``start`` that has no fixed-size argument; where the next one starts, -1 after STOP."""
    code = payload[start]
    pos = start + 1
    if code in _COUNTED:
        width, signed = _COUNTED[code]
        count = int.from_bytes(payload[pos : pos + width], "little", signed=signed)
        pos += width + count
        if count < 0 or pos > end:
            raise pickle.UnpicklingError(f"length {count} at {start} runs past the payload")
        return pos
    if code == _STOP:
        if pos != end:
            raise pickle.UnpicklingError(f"{end - pos} bytes after the pickle's STOP")
        return -1
    name = _NAMES.get(code)
    if name in _REFUSED:
        raise UnsafePickleError(f"refused {name} at {start}")
    if name is None:
        raise pickle.UnpicklingError(f"unknown opcode {code:#04x} at {start}")
    # The rest take a line: PUT's index is checked, the others are read by the unpickler.
    newline = payload.find(b"\n", pos)
    if newline < 0:
        raise pickle.UnpicklingError(f"unterminated line at {start}")
    if code == _PUT:
        digits = payload[pos:newline]
        if len(digits) > _MAX_INDEX_DIGITS or not digits.isdigit() or int(digits) > start:
            raise pickle.UnpicklingError(f"memo index above its offset {start}")
    return newline + 1


class PlainUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` with every global and persistent id refused, Python 2 strings as bytes."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream, encoding="bytes")

    def find_class(self, module: str, name: str) -> NoReturn:
        raise UnsafePickleError(f"refused global {escape(module)}.{escape(name)}")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise UnsafePickleError("refused persistent id")


def loads(payload: bytes) -> Any:
    """Load a pickle that may only contain plain data, after :func:`scan`.

    Raises
    ------
    UnsafePickleError
        The payload names a global, a persistent id or another code-running opcode (nothing was executed).
    pickle.UnpicklingError, ValueError, EOFError, TypeError, ...
        The payload is truncated, not a pickle, or too costly; callers treat any exception as a rejected frame.
    """
    scan(payload)
    return PlainUnpickler(io.BytesIO(payload)).load()
