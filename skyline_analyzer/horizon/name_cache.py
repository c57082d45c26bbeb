"""A per-process cache of metric names and one decision about each, bounded by memory rather than count.

At tens of thousands of datapoints a second most names repeat, so the listeners remember which names they
have already found valid and the workers whether ``SKIP_LIST`` drops a name. A count bound is no bound when
names may be long: 100,000 names of 1 MB are 100 GB. Here every entry is charged the size of its string
plus the dictionary's share, and the cache is emptied when the total would pass ``HORIZON_CACHE_BYTES``.
"""

from __future__ import annotations

import sys
from typing import Any

#: Bytes charged per entry beyond the string itself: the dict's hash, key and value slots at its load factor.
ENTRY_OVERHEAD = 64


class NameCache:
    """``name -> decision`` for at most ``max_bytes`` of names; emptied when full (names are re-derived)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._entries: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        """The decision remembered for ``name``, or None."""
        return self._entries.get(name)

    def put(self, name: str, decision: Any) -> None:
        """Remember ``decision`` (not None) for ``name``; a name larger than the whole cache is not kept."""
        cost = sys.getsizeof(name) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        if self.used + cost > self.max_bytes:
            self._entries.clear()
            self.used = 0
        if name not in self._entries:
            self.used += cost
        self._entries[name] = decision

    def __len__(self) -> int:
        return len(self._entries)
