"""Work units of a Dask run (pure: no Dask, no Redis) and the second-order check run twice in one run."""

from __future__ import annotations

import itertools

import msgpack
import pytest

from skyline_analyzer import keys
from skyline_analyzer.analyzer import history
from skyline_analyzer.analyzer.units import (
    SLOTS,
    THIS_MACHINE,
    SlotRange,
    canonical_host,
    placement,
    plan,
    slot_of,
    slot_owners,
)

NAMES = [f"metrics.host{n % 97}.cpu.{n}" for n in range(5000)] + ["metrics.{tag}.a", "metrics.{tag}.b"]


def test_slot_of_is_redis_cluster_key_slot():
    # The examples of Redis's CLUSTER KEYSLOT documentation, and the CRC16/XMODEM check value of "123456789".
    assert slot_of("somekey") == 11058
    assert slot_of("foo{hash_tag}") == slot_of("{hash_tag}bar") == 2515
    assert slot_of("123456789") == 0x31C3 % SLOTS


@pytest.mark.parametrize("units", [1, 7, 64, 16384])
def test_every_key_is_in_exactly_one_unit_of_contiguous_slots(units):
    planned = plan(NAMES, units)
    assert sorted(n for u in planned for n in u.names) == sorted(NAMES)
    assert [u.unit_id for u in planned] == list(range(len(planned)))
    assert len(planned) <= units
    for unit in planned:
        assert all(unit.first_slot <= slot_of(n) <= unit.last_slot for n in unit.names)
    for before, after in itertools.pairwise(planned):
        assert before.last_slot < after.first_slot
    # A slot is never split: hash-tagged keys travel together.
    assert any({"metrics.{tag}.a", "metrics.{tag}.b"} <= set(u.names) for u in planned)


def test_a_unit_never_crosses_from_one_master_to_the_next():
    owners = [SlotRange(0, 5460, "10.0.0.1"), SlotRange(5461, 10922, "10.0.0.2"),
              SlotRange(10923, SLOTS - 1, "10.0.0.3")]
    for units in (1, 3, 10):
        planned = plan(NAMES, units, owners)
        for unit in planned:
            spans = {o.host for o in owners if not (unit.last_slot < o.first or unit.first_slot > o.last)}
            assert len(spans) == 1, unit
        assert len(planned) >= 3


def test_units_go_to_the_workers_on_their_masters_host():
    owners = [SlotRange(0, 8191, "10.0.0.1"), SlotRange(8192, SLOTS - 1, "127.0.0.1")]
    workers = {"tcp://10.0.0.1:4001": {"host": "10.0.0.1"}, "tcp://10.0.0.1:4002": {"host": "10.0.0.1"},
               "tcp://127.0.0.1:4003": {"host": "127.0.0.1"}, "tcp://10.0.0.9:4004": {"host": "10.0.0.9"}}
    planned = plan(NAMES, 8, owners)
    preferred = placement(planned, owners, workers)
    for unit in planned:
        if unit.last_slot <= 8191:
            assert preferred[unit.unit_id] == ["tcp://10.0.0.1:4001", "tcp://10.0.0.1:4002"]
        else:
            assert preferred[unit.unit_id] == ["tcp://127.0.0.1:4003"]
    # No worker on a master's host, or no owner known: any worker.
    assert all(p == [] for p in placement(planned, [SlotRange(0, SLOTS - 1, "10.0.0.5")], workers).values())
    assert all(p == [] for p in placement(planned, [], workers).values())


def test_hosts_of_this_machine_are_one_name():
    assert canonical_host("") == canonical_host("127.0.0.1") == canonical_host("localhost") == THIS_MACHINE
    assert canonical_host("10.1.2.3") == "10.1.2.3"


def test_a_plain_redis_owns_every_slot(redis_conn):
    assert slot_owners(redis_conn, THIS_MACHINE) == [SlotRange(0, SLOTS - 1, THIS_MACHINE)]


@pytest.mark.parametrize("earlier", [[], [[1000.0, 5.0]], [[1000.0, 5.0], [1500.0, 7.0]]])
def test_the_second_order_check_run_twice_in_a_run_gives_one_answer_and_one_entry(redis_conn, earlier):
    name = "metrics.twice"
    if earlier:
        redis_conn.set(keys.trigger_history(name), msgpack.packb(earlier))
    now = 2000.5
    first = history.is_anomalously_anomalous(redis_conn, name, 9.0, now)
    stored = redis_conn.get(keys.trigger_history(name))
    again = history.is_anomalously_anomalous(redis_conn, name, 9.0, now)
    assert again == first
    assert redis_conn.get(keys.trigger_history(name)) == stored
    assert len(msgpack.unpackb(stored)) == len(earlier) + 1
    # The next run appends as before.
    history.is_anomalously_anomalous(redis_conn, name, 9.0, now + 600)
    assert len(msgpack.unpackb(redis_conn.get(keys.trigger_history(name)))) == len(earlier) + 2
