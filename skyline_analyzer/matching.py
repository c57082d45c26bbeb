"""Skyline's metric-list matching rule (SKIP_LIST, DO_NOT_SKIP_LIST, NON_DERIVATIVE_MONOTONIC_METRICS,
DO_NOT_ALERT_ON_STALE_METRICS; docs/horizon.md#name-lists), and a bounded per-name memo of any matching
rule (:class:`MatchCache`) for the Analyzer's every-run passes over all the names."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable


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


class MatchCache:
    """The names a fixed predicate selects, remembered per name from one call to the next, bounded.

    The Analyzer matches every metric name against alert patterns on every run; names rarely change, so
    :meth:`select` answers a name seen before from two sets (set operations, at C speed) and runs the
    predicate only on new names. Names absent from a call are forgotten, and at most ``limit`` names are
    remembered: beyond, the predicate runs on the others at every call, with the same result. The
    predicate must depend on nothing but the name (build a new cache when the patterns change).
    """

    def __init__(self, predicate: Callable[[str], bool], limit: int) -> None:
        self._predicate = predicate
        self.limit = limit
        self._selected: set[str] = set()
        self._rejected: set[str] = set()

    def __len__(self) -> int:
        return len(self._selected) + len(self._rejected)

    def select(self, names: Collection[str]) -> set[str]:
        """The names the predicate is true of."""
        current = names if isinstance(names, set | frozenset) else set(names)
        self._selected &= current
        self._rejected &= current
        selected = set(self._selected)
        room = self.limit - len(self)
        for name in current.difference(self._selected, self._rejected):
            hit = self._predicate(name)
            if hit:
                selected.add(name)
            if room > 0:
                room -= 1
                (self._selected if hit else self._rejected).add(name)
        return selected
