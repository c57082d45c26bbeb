"""Skyline's metric-list matching rule (SKIP_LIST, DO_NOT_SKIP_LIST, NON_DERIVATIVE_MONOTONIC_METRICS,
DO_NOT_ALERT_ON_STALE_METRICS; docs/horizon.md#name-lists)."""

from __future__ import annotations

from collections.abc import Iterable


def matches(name: str, pattern: str) -> bool:
    """``pattern`` is a substring of ``name``, or every dotted element of it is an element of ``name``.

    The element rule counts the pattern's element *list* (not its set), so a pattern with a repeated
    element such as ``a.a`` can only match by substring: that is the original's behaviour.
    """
    if pattern in name:
        return True
    pattern_elements = pattern.split(".")
    return len(set(name.split(".")) & set(pattern_elements)) == len(pattern_elements)


def in_list(name: str, patterns: Iterable[str]) -> bool:
    """True when any pattern :func:`matches` the name."""
    return any(matches(name, pattern) for pattern in patterns)


def skipped(name: str, skip_list: Iterable[str], do_not_skip_list: Iterable[str]) -> bool:
    """Horizon's skip rule: on SKIP_LIST and not rescued by DO_NOT_SKIP_LIST."""
    return in_list(name, skip_list) and not in_list(name, do_not_skip_list)
