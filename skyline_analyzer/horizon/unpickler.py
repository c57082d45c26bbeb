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

# How an opcode's argument is laid out, for the scan.
_NONE, _FIXED, _LINE, _COUNTED, _REFUSED, _STOP = range(6)
_PUT, _LONG_BINPUT = ord("p"), ord("r")
_REFUSED_NAMES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
                  "REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX"}
#: Digits of a PUT index: more than any payload has bytes.
_MAX_INDEX_DIGITS = 12
_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}


def _layouts() -> list[tuple[int, int, bool] | None]:
    """Per opcode byte: (layout, size of the fixed argument or of the count, whether the count is signed)."""
    table: list[tuple[int, int, bool] | None] = [None] * 256
    for op in pickletools.opcodes:
        code, arg = ord(op.code), op.arg
        if op.name in _REFUSED_NAMES:
            table[code] = (_REFUSED, 0, False)
        elif op.name == "STOP":
            table[code] = (_STOP, 0, False)
        elif arg is None:
            table[code] = (_NONE, 0, False)
        elif arg.n >= 0:
            table[code] = (_FIXED, arg.n, False)
        elif arg.n == pickletools.UP_TO_NEWLINE:
            table[code] = (_LINE, 0, False)
        else:
            count = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                     pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}[arg.n]
            table[code] = (_COUNTED, count, arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
    return table


_LAYOUTS = _layouts()


def scan(payload: bytes) -> None:
    """Refuse a payload whose loading would cost more than its size, or that names code (see the module).

    Raises
    ------
    UnsafePickleError
        A code-running opcode.
    pickle.UnpicklingError
        An unknown opcode, a memo index above its offset, a length past the end, no STOP or bytes after it.
    """
    pos, end = 0, len(payload)
    while pos < end:
        start = pos
        layout = _LAYOUTS[payload[pos]]
        if layout is None:
            raise pickle.UnpicklingError(f"unknown opcode {payload[pos]:#04x} at {start}")
        kind, size, signed = layout
        pos += 1
        if kind == _FIXED:
            if payload[start] == _LONG_BINPUT and int.from_bytes(payload[pos : pos + 4], "little") > start:
                raise pickle.UnpicklingError(f"memo index above its offset {start}")
            pos += size
        elif kind == _COUNTED:
            count = int.from_bytes(payload[pos : pos + size], "little", signed=signed)
            pos += size + count
            if count < 0 or pos > end:
                raise pickle.UnpicklingError(f"length {count} at {start} runs past the payload")
        elif kind == _LINE:
            newline = payload.find(b"\n", pos)
            if newline < 0:
                raise pickle.UnpicklingError(f"unterminated line at {start}")
            if payload[start] == _PUT:
                digits = payload[pos:newline]
                if len(digits) > _MAX_INDEX_DIGITS or not digits.isdigit() or int(digits) > start:
                    raise pickle.UnpicklingError(f"memo index above its offset {start}")
            pos = newline + 1
        elif kind == _STOP:
            if pos != end:
                raise pickle.UnpicklingError(f"{end - pos} bytes after the pickle's STOP")
            return
        elif kind == _REFUSED:
            raise UnsafePickleError(f"refused {_NAMES[payload[start]]} at {start}")
    raise pickle.UnpicklingError("pickle data was truncated")


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
