"""A pickle loader for carbon's pickle protocol that can build nothing but plain data.

Carbon relays send ``[(name, (timestamp, value)), ...]``: lists, tuples, strings and numbers. Every way a
pickle can run code goes through a *global* (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*) or a persistent id:
REDUCE, BUILD and NEWOBJ only act on a callable or class some earlier opcode fetched. :class:`PlainUnpickler`
refuses every global and persistent id at the moment the opcode is read, so a ``__reduce__`` payload stops
at its first opcode that names a callable, before anything is called. The original's carbon "SafeUnpickler"
allowed ``copy_reg._reconstructor`` and ``object``; carbon never sends those, so here the allow-list is empty.

Python 2 ``str`` objects (carbon-relay under Python 2) are loaded as ``bytes``: a name that is not UTF-8
then fails only its own element's check (:mod:`.datapoints`), not the whole frame.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, NoReturn

from skyline_analyzer.exceptions import UnsafePickleError
from skyline_analyzer.excerpt import escape


class PlainUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` with every global and persistent id refused, Python 2 strings as bytes."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream, encoding="bytes")

    def find_class(self, module: str, name: str) -> NoReturn:
        raise UnsafePickleError(f"refused global {escape(module)}.{escape(name)}")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise UnsafePickleError("refused persistent id")


def loads(payload: bytes) -> Any:
    """Load a pickle that may only contain plain data.

    Raises
    ------
    UnsafePickleError
        The payload names a global or a persistent id (nothing was executed).
    pickle.UnpicklingError, ValueError, EOFError, TypeError, ...
        The payload is truncated or not a pickle; callers treat any exception as a rejected frame.
    """
    stream = io.BytesIO(payload)
    obj = PlainUnpickler(stream).load()
    if stream.tell() != len(payload):
        raise pickle.UnpicklingError(f"{len(payload) - stream.tell()} bytes after the pickle's STOP")
    return obj
