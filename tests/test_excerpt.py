"""Bounded renderings of hostile values: one short escaped line, whatever the input costs to repr."""

from __future__ import annotations

import tracemalloc

import pytest

from skyline_analyzer.excerpt import LIMIT, describe, escape


def _shared_lists() -> list:
    value: object = "x"
    for _ in range(8):
        value = [value] * 10
    return value  # type: ignore[return-value]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\nb", "'a\\nb'"),
        ("tab\there", "'tab\\there'"),
        ("\x1b[31mred", "'\\x1b[31mred'"),
        ("a\ud800", "'a\\ud800'"),
        (b"\xff\n", "b'\\xff\\n'"),
        (10**5000, "<int of 16610 bits>"),
        ((1, 2.5, None), "(1, 2.5, None)"),
        ({"k": [1]}, "{'k': [1]}"),
        (object(), "<object>"),
    ],
    ids=["newline", "tab", "escape-sequence", "surrogate", "bytes", "huge-int", "tuple", "dict", "object"],
)
def test_describe_renders_escaped(value: object, expected: str) -> None:
    assert describe(value) == expected


@pytest.mark.parametrize(
    "value",
    [_shared_lists(), _nested(100_000), "n" * 10_000_000, b"b" * 10_000_000],
    ids=["shared-sublists", "nested-100k", "10M-str", "10M-bytes"],
)
def test_describe_is_bounded(value: object) -> None:
    # repr() of the first costs ~1 GB, of the second a RecursionError, of the others a 10 MB copy.
    tracemalloc.start()
    try:
        text = describe(value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(text) <= LIMIT + 3
    assert "\n" not in text
    assert peak < 64 * 1024


def test_escape_keeps_printable_ascii_and_cuts() -> None:
    assert escape("plain.name-1_x") == "plain.name-1_x"
    assert escape("x" * 200, limit=10) == "x" * 10 + "..."
    assert escape("back\\slash") == "back\\\\slash"


def test_escape_can_leave_backslashes_for_text_escaped_once() -> None:
    once = escape("a\nb")
    assert escape(once, backslashes=False) == once == "a\\nb"
    assert escape("new\nline\x1b", backslashes=False) == "new\\nline\\x1b"
