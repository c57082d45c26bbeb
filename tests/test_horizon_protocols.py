"""The three input decoders and the restricted unpickler: what is accepted, what is refused, nothing runs."""

from __future__ import annotations

import math
import pickle
import pickletools
from pathlib import Path

import msgpack
import pytest

from skyline_analyzer.horizon.protocols import BadInput, datapoint, decode_datagram, decode_line, decode_pickle
from skyline_analyzer.horizon.unpickler import UnsafePickleError, loads
from tests.support import Touch


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_carbon_payload_loads_in_every_protocol(protocol: int) -> None:
    data = [("stats.api.requests", (1539850000.0, 12.5)), ("a.b", (1539850060, 7))]
    good, bad = decode_pickle(pickle.dumps(data, protocol=protocol))
    assert good == data
    assert bad == []


def test_python2_carbon_relay_pickle_strings_are_decoded() -> None:
    # What carbon-relay under Python 2 sends: protocol 2, names as py2 str (SHORT_BINSTRING opcodes).
    payload = (b"\x80\x02]q\x00U\x0bstats.a.reqq\x01G@\x00\x00\x00\x00\x00\x00\x00K\x07\x86q\x02\x86q\x03a.")
    ops = {op.name for op, _, _ in pickletools.genops(payload)}
    assert "SHORT_BINSTRING" in ops
    good, bad = decode_pickle(payload)
    assert good == [("stats.a.req", (2.0, 7))]
    assert bad == []


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_reduce_payload_is_refused_and_never_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps([("a.b", (1, 2)), Touch(marker)], protocol=protocol)
    with pytest.raises(UnsafePickleError, match="refused global"):
        loads(payload)
    with pytest.raises(BadInput, match="UnsafePickleError"):
        decode_pickle(payload)
    assert not marker.exists()


def test_every_global_is_refused_even_harmless_ones() -> None:
    # copy_reg._reconstructor and object were the original's allow-list; carbon never needs them.
    for obj in (object(), {1, 2}.__class__, math.pi.__class__):
        with pytest.raises(UnsafePickleError):
            loads(pickle.dumps(obj, protocol=2))


def test_persistent_ids_are_refused() -> None:
    payload = b"(lp0\nPsome-id\np1\na."  # protocol 0: a list holding a persistent id
    with pytest.raises(UnsafePickleError, match="persistent"):
        loads(payload)


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps([("a", (1, 2))], protocol=2)[:-3],  # truncated
        pickle.dumps([("a", (1, 2))], protocol=2) + b"junk",  # bytes after STOP
        b"not a pickle at all",
        b"",
        pickle.dumps({"a": (1, 2)}, protocol=2),  # a dict, not a list
        pickle.dumps("a.b 1 2", protocol=2),
    ],
)
def test_unreadable_frames_are_rejected_whole(payload: bytes) -> None:
    with pytest.raises(BadInput):
        decode_pickle(payload)


def test_bad_elements_drop_alone() -> None:
    data = [
        ("ok.one", (100, 1.0)),
        ("no.pair", 5),
        ("three", (1, 2, 3)),
        ("", (1, 2)),
        ("has space", (1, 2)),
        ("nan.value", (1, float("nan"))),
        ("inf.ts", (float("inf"), 1)),
        ("bool.value", (1, True)),
        ("str.value", (1, "12")),
        ("huge.int", (1, 2**70)),
        (b"\xff\xfe", (1, 2)),
        ({"a": 1}, (1, 2)),
        ("ok.two", [200, -3]),
    ]
    good, bad = decode_pickle(pickle.dumps(data, protocol=4))
    assert good == [("ok.one", (100, 1.0)), ("ok.two", (200, -3))]
    assert len(bad) == len(data) - 2


def test_numbers_keep_the_senders_types() -> None:
    _, (ts, value) = datapoint(("a", (1539850000, 2.0)))
    assert type(ts) is int and type(value) is float
    assert datapoint((b"bytes.name", (1.5, -(2**63)))) == ("bytes.name", (1.5, -(2**63)))


def test_datagram_as_seed_data_sends_it() -> None:
    assert decode_datagram(msgpack.packb(("horizon.test.udp", [1539850000, 5.0]))) == (
        "horizon.test.udp", (1539850000, 5.0))


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never-used msgpack byte
        msgpack.packb(("a", [1, 2]))[:-1],  # truncated
        msgpack.packb(("a", [1, 2])) * 2,  # two objects in one datagram
        msgpack.packb(("horizon.test.params", 1)),  # seed_data's connect test: no pair
        msgpack.packb({"a": [1, 2]}),
        b"",
    ],
)
def test_bad_datagrams_are_rejected(data: bytes) -> None:
    with pytest.raises(BadInput):
        decode_datagram(data)


def test_plaintext_lines() -> None:
    assert decode_line(b"stats.a 12 1539850000") == ("stats.a", (1539850000, 12))
    assert decode_line(b"stats.a  -1.5e3\t1539850000.25") == ("stats.a", (1539850000.25, -1500.0))
    assert decode_line(b"stats.a .5 1539850000") == ("stats.a", (1539850000, 0.5))


@pytest.mark.parametrize(
    "line",
    [b"stats.a 12", b"stats.a 12 1 extra", b"stats.a twelve 1539850000", b"stats.a nan 1539850000",
     b"stats.a 1_000 1539850000", b"stats.a 12 inf", b"\xff\xfe 1 2", b""],
)
def test_bad_plaintext_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(BadInput):
        decode_line(line)
