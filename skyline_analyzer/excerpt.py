"""Bounded, escaped renderings of untrusted values for log lines and error messages.

Anything that came from outside (a metric name from Redis, a pickle element, a UDP datagram, a settings
value) may be huge, deeply nested, shared many times over, or full of control characters. ``repr`` of such a
value can take seconds, gigabytes or a RecursionError *before* any truncation applies, and a raw newline in
a name forges a log line. The functions here bound the work before they start: they walk at most
:data:`MAX_ITEMS` elements to :data:`MAX_DEPTH` levels, render at most ``limit`` characters, and escape
every character that is not printable ASCII, so the result is always one short line.
"""

from __future__ import annotations

from typing import Any

#: Characters of a rendering kept by default; longer ones end with ``...``.
LIMIT = 80
#: Nesting levels of a container rendered before ``...`` stands for the rest.
MAX_DEPTH = 4
#: Elements (over all levels) rendered before the walk stops.
MAX_ITEMS = 32
#: Digits of an integer rendered: ``int.__repr__`` is quadratic and refuses over 4,300 digits.
MAX_INT_BITS = 256
ELLIPSIS = "..."

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str, limit: int = LIMIT, *, backslashes: bool = True) -> str:
    """``text`` cut to ``limit`` characters, every non-printable or non-ASCII character as an escape.

    Only ``limit`` characters of the input are looked at, so the cost is independent of its length.
    ``backslashes=False`` leaves a backslash as it is, so text escaped once is not escaped again (the log
    formatter's choice: it must make a line safe, not reversible).
    """
    head = text[: limit + 1]
    out: list[str] = []
    size = 0
    for char in head:
        if char == "\\" and not backslashes:
            piece = char
        elif char in _ESCAPES:
            piece = _ESCAPES[char]
        elif " " <= char <= "~":
            piece = char
        else:
            code = ord(char)
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        if size + len(piece) > limit:
            return "".join(out) + ELLIPSIS
        out.append(piece)
        size += len(piece)
    if len(text) > limit:
        return "".join(out) + ELLIPSIS
    return "".join(out)


def describe(value: Any, limit: int = LIMIT) -> str:
    """A ``repr``-like one-line rendering of ``value``, bounded in time, memory and length.

    Strings and bytes are quoted and escaped, integers over :data:`MAX_INT_BITS` bits are shown by their
    size, containers are walked depth- and count-limited, anything else shows its type only (its own
    ``__repr__`` is not trusted to be cheap).
    """
    text = _render(value, 0, [MAX_ITEMS], limit)
    # Every piece is already escaped printable ASCII: only the length is left to bound.
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def _render(value: Any, depth: int, budget: list[int], limit: int) -> str:
    budget[0] -= 1
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            return f"<int of {value.bit_length()} bits>"
        return repr(value)
    if isinstance(value, str):
        return "'" + escape(value, limit) + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return "b'" + escape(bytes(value[: limit + 1]).decode("latin-1"), limit) + "'"
    if isinstance(value, list | tuple | set | frozenset | dict):
        return _render_container(value, depth, budget, limit)
    return "<" + escape(type(value).__name__, limit) + ">"


def _render_container(value: Any, depth: int, budget: list[int], limit: int) -> str:
    opening, closing = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "{}")
    if depth >= MAX_DEPTH:
        return opening + ELLIPSIS + closing
    parts: list[str] = []
    length = 0
    items = value.items() if isinstance(value, dict) else value
    for item in items:
        if budget[0] <= 0 or length > limit:
            parts.append(ELLIPSIS)
            break
        if isinstance(value, dict):
            key, val = item
            text = _render(key, depth + 1, budget, limit) + ": " + _render(val, depth + 1, budget, limit)
        else:
            text = _render(item, depth + 1, budget, limit)
        parts.append(text)
        length += len(text) + 2
    return opening + ", ".join(parts) + closing
