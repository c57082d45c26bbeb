"""The Redis reads and values alerting shares: key existence, set members, packed values.

Every read logs its failure and answers conservatively, so one Redis error costs the metric or the
step it concerns, never the run.
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack

from skyline_analyzer import excerpt

log = logging.getLogger(__name__)


def packed(value: Any) -> bytes:
    """msgpack of ``value``; a numpy scalar (from a caller that computed it) packs as the number it holds."""
    return msgpack.packb(value.item() if hasattr(value, "item") else value)


def exists(redis: Any, key: str) -> bool | None:
    """EXISTS, or None (logged) when Redis failed: callers then skip the metric, as v1.2.8 did."""
    try:
        return bool(redis.exists(key))
    except Exception:
        log.exception("error :: alerts - failed to check %s", excerpt.escape(key))
        return None


def members(redis: Any, key: str) -> set[str]:
    """SMEMBERS as text; an empty set (logged) when Redis failed.

    A member that is not UTF-8 cannot name a metric: it is left out, and the count of such members is
    logged once per call with the first one's bounded rendering.
    """
    try:
        raw = redis.smembers(key)
    except Exception:
        log.exception("error :: alerts - failed to read %s", key)
        return set()
    found = set()
    undecodable = []
    for member in raw:
        if not isinstance(member, bytes):
            found.add(member)
            continue
        try:
            found.add(member.decode())
        except UnicodeDecodeError:
            undecodable.append(member)
    if undecodable:
        log.error("error :: alerts - %s: %d members are not UTF-8 and were skipped, e.g. %s", key,
                  len(undecodable), excerpt.describe(undecodable[0]))
    return found
