"""Work units of a Dask run: the discovered metrics cut into contiguous ranges of Redis hash slots.

Every key lives in one of Redis Cluster's 16384 hash slots (CRC16 of the key, or of its ``{hash tag}``),
and each slot is served by one master. Cutting the sorted slots into ranges, and never letting a range
cross from one master's slots to another's, gives units whose keys all sit on one node: a unit is then
sent, preferably, to a Dask worker on that node's host (data locality), and its MGETs go to one node. A
single Redis owns every slot, so the same plan serves it (docs/scale-out.md#work-units).

Nothing here imports Dask: the plan is pure, and the parent's run builds it before it talks to Dask.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: What a Redis node or Dask worker on the parent's own machine is called in the host map.
THIS_MACHINE = "localhost"


@dataclass(frozen=True)
class WorkUnit:
    """One unit of a run: the full keys of the slots ``first_slot..last_slot``, in discovery order per slot."""

    unit_id: int
    first_slot: int
    last_slot: int
    names: list[str]


@dataclass(frozen=True)
class SlotRange:
    """Slots ``first..last`` served by the master on ``host``."""

    first: int
    last: int
    host: str


def slot_of(full_key: str) -> int:
    """The key's hash slot, as Redis Cluster computes it (hash tags included)."""
    return key_slot(full_key.encode("utf-8", "surrogateescape"))


def plan(full_keys: Sequence[str], units: int, owners: Sequence[SlotRange] = ()) -> list[WorkUnit]:
    """Cut ``full_keys`` into at most about ``units`` units of contiguous slots, of about equal size.

    A slot is never split; a unit never crosses the first slot of one of ``owners`` (a unit lies on one
    node). Every key is in exactly one unit; keys of one slot keep their discovery order.
    """
    if not full_keys:
        return []
    by_slot: dict[int, list[str]] = {}
    for name in full_keys:
        by_slot.setdefault(slot_of(name), []).append(name)
    target = math.ceil(len(full_keys) / max(1, units))
    cuts = sorted({o.first for o in owners})
    plans: list[WorkUnit] = []
    names: list[str] = []
    first = last = -1
    next_cut = 0
    for slot in sorted(by_slot):
        crossed = False
        while next_cut < len(cuts) and cuts[next_cut] <= slot:
            crossed = crossed or (bool(names) and cuts[next_cut] > last)
            next_cut += 1
        if names and (len(names) >= target or crossed):
            plans.append(WorkUnit(len(plans), first, last, names))
            names = []
        if not names:
            first = slot
        names.extend(by_slot[slot])
        last = slot
    plans.append(WorkUnit(len(plans), first, last, names))
    return plans


def slot_owners(conn: Any, standalone_host: str) -> list[SlotRange]:
    """The masters' slot ranges as the client knows them; one range on ``standalone_host`` for a plain Redis.

    A cluster client (redis-py's ``RedisCluster``) keeps the slot map it follows MOVED replies with; a slot
    it has no owner for is left out (its unit is then placed anywhere).
    """
    manager = getattr(conn, "nodes_manager", None)
    if manager is None:
        return [SlotRange(0, SLOTS - 1, standalone_host)]
    ranges: list[SlotRange] = []
    for slot in range(SLOTS):
        nodes = manager.slots_cache.get(slot)
        if not nodes:
            continue
        host = nodes[0].host
        if ranges and ranges[-1].host == host and ranges[-1].last == slot - 1:
            ranges[-1] = SlotRange(ranges[-1].first, slot, host)
        else:
            ranges.append(SlotRange(slot, slot, host))
    return ranges


def _own_addresses() -> set[str]:
    try:
        return set(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        return set()


def canonical_host(host: str, own: Iterable[str] = ()) -> str:
    """``host`` as an IP address, or :data:`THIS_MACHINE` for a loopback, a unix socket ('') or our own address.

    A name that does not resolve is kept as written.
    """
    if not host or host == THIS_MACHINE:
        return THIS_MACHINE
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return host
    if ipaddress.ip_address(address).is_loopback or address in own:
        return THIS_MACHINE
    return address


def placement(units: Sequence[WorkUnit], owners: Sequence[SlotRange],
              workers: Mapping[str, Mapping[str, Any]]) -> dict[int, list[str]]:
    """Each unit's preferred Dask workers: those on the host of the master serving its first slot.

    ``workers`` is the scheduler's table (address -> info with a ``host``). A unit whose master's host runs
    no Dask worker, or whose slot has no known owner, gets [] (any worker).
    """
    own = _own_addresses()
    grouped: dict[str, list[str]] = {}
    for address, info in sorted(workers.items()):
        grouped.setdefault(canonical_host(str(info.get("host", "")), own), []).append(address)
    hosts = [canonical_host(owner.host, own) for owner in owners]
    preferred = {}
    for unit in units:
        where = next((h for o, h in zip(owners, hosts, strict=True) if o.first <= unit.first_slot <= o.last), None)
        preferred[unit.unit_id] = list(grouped.get(where, [])) if where is not None else []
    return preferred
