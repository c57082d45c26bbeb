"""The three input decoders, the datapoint checks and the restricted unpickler: what is accepted, what is
refused (with which reason), nothing runs, and nothing but BadInput escapes."""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import random
from pathlib import Path

import msgpack
import pytest

from skyline_analyzer.exceptions import BadInput, Rejection, UnsafePickleError
from skyline_analyzer.horizon.datapoints import Validator
from skyline_analyzer.horizon.pickle_receiver import decode_pickle as decode_with
from skyline_analyzer.horizon.plaintext_receiver import decode_line as line_with
from skyline_analyzer.horizon.udp_receiver import decode_datagram as datagram_with
from skyline_analyzer.horizon.unpickler import PlainUnpickler, loads, scan
from tests.support import Touch

MAX_NAME_BYTES = 1024


def validator() -> Validator:
    return Validator(MAX_NAME_BYTES, 1 << 20)


def decode_pickle(payload: bytes) -> tuple[list, list]:
    good, refused = decode_with(payload, validator())
    return good, [reason for reason, count in refused.counts.items() for _ in range(count)]


def decode_datagram(data: bytes):
    return datagram_with(data, validator())


def decode_line(line: bytes):
    return line_with(line, validator())


def datapoint(item):
    return validator().datapoint(item)



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
    with pytest.raises(UnsafePickleError, match=r"refused (STACK_)?GLOBAL"):
        loads(payload)
    with pytest.raises(BadInput, match=r"refused (STACK_)?GLOBAL") as refused:
        decode_pickle(payload)
    assert refused.value.reason is Rejection.PICKLE_UNSAFE
    assert not marker.exists()


def test_every_global_is_refused_even_harmless_ones() -> None:
    # copy_reg._reconstructor and object were the original's allow-list; carbon never needs them.
    for obj in (object(), {1, 2}.__class__, math.pi.__class__):
        with pytest.raises(UnsafePickleError):
            loads(pickle.dumps(obj, protocol=2))


def test_the_unpickler_itself_refuses_globals_the_scan_would_let_through() -> None:
    # The scan refuses every code-running opcode first; the unpickler's own refusal is the second line.
    payload = pickle.dumps([object()], protocol=2)
    with pytest.raises(UnsafePickleError, match="refused global __builtin__"):
        PlainUnpickler(io.BytesIO(payload)).load()


@pytest.mark.parametrize(
    "payload",
    [
        b"]replace.",  # LONG_BINPUT of 'epla' (CPython gh-115952: gigabytes for a memo table)
        b"]r\xff\xff\xff\x7f.",  # LONG_BINPUT 2**31 - 1
        b"(lp99999999999\n.",  # PUT with a decimal index
        b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"x.",  # BINBYTES8 claiming a terabyte
        b"\x80\x02X\xff\xff\xff\xffab.",  # BINUNICODE claiming 4 GB
        b"\x80\x02T\xff\xff\xff\xffab.",  # BINSTRING with a negative length
        b"\x80\x02]\xff.",  # an opcode that does not exist
    ],
)
def test_payloads_that_would_cost_more_than_their_size_are_refused_before_loading(payload: bytes) -> None:
    with pytest.raises(pickle.UnpicklingError):
        scan(payload)
    with pytest.raises(BadInput) as refused:
        decode_pickle(payload)
    assert refused.value.reason is Rejection.PICKLE_UNREADABLE


def test_sequential_memo_indexes_of_real_picklers_pass_the_scan() -> None:
    # Over 256 memo entries: LONG_BINPUT in protocols 1-3, PUT in protocol 0, MEMOIZE in 4 and 5.
    data = [(f"stats.metric.{n}", (1_700_000_000 + n, n / 3)) for n in range(600)]
    for protocol in range(6):
        payload = pickle.dumps(data, protocol=protocol)
        scan(payload)
        assert decode_pickle(payload) == (data, [])


def test_persistent_ids_are_refused() -> None:
    payload = b"(lp0\nPsome-id\np1\na."  # protocol 0: a list holding a persistent id
    with pytest.raises(UnsafePickleError, match="PERSID"):
        loads(payload)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (pickle.dumps([("a", (1, 2))], protocol=2)[:-3], Rejection.PICKLE_UNREADABLE),  # truncated
        (pickle.dumps([("a", (1, 2))], protocol=2) + b"junk", Rejection.PICKLE_UNREADABLE),  # after STOP
        (b"not a pickle at all", Rejection.PICKLE_UNREADABLE),
        (b"", Rejection.PICKLE_UNREADABLE),
        # Protocol 0 spells integers in decimal: 5,000 digits is over int()'s limit (a ValueError inside).
        (b"(lp0\nL" + b"7" * 5000 + b"L\na.", Rejection.PICKLE_UNREADABLE),
        (pickle.dumps({"a": (1, 2)}, protocol=2), Rejection.NOT_A_LIST),  # a dict, not a list
        (pickle.dumps("a.b 1 2", protocol=2), Rejection.NOT_A_LIST),
    ],
)
def test_unreadable_frames_are_rejected_whole(payload: bytes, reason: Rejection) -> None:
    with pytest.raises(BadInput) as refused:
        decode_pickle(payload)
    assert refused.value.reason is reason
    assert len(str(refused.value)) < 200


def test_bad_elements_drop_alone_each_with_its_reason() -> None:
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
        ("huger.int", (1, 10**5000)),  # its repr alone raises ValueError
        ({"a": 1}, (1, 2)),
        ("a\ud800", (1, 2)),  # a lone surrogate: no UTF-8 key can be made of it
        ("n" * (MAX_NAME_BYTES + 1), (1, 2)),
        ("é" * (MAX_NAME_BYTES // 2 + 1), (1, 2)),  # under the limit in characters, over it in bytes
        ("ok.two", [200, -3]),
    ]
    good, bad = decode_pickle(pickle.dumps(data, protocol=4))
    assert good == [("ok.one", (100, 1.0)), ("ok.two", (200, -3))]
    assert bad == [
        *[Rejection.NOT_A_DATAPOINT] * 2, *[Rejection.NAME_CHARACTERS] * 2, *[Rejection.NOT_FINITE] * 2,
        *[Rejection.NOT_A_NUMBER] * 2, *[Rejection.OUT_OF_RANGE] * 2, Rejection.NAME_NOT_TEXT, Rejection.NAME_NOT_UTF8,
        *[Rejection.NAME_TOO_LONG] * 2,
    ]


def test_a_deeply_nested_element_drops_alone() -> None:
    # An element of lists nested 100,000 deep (pickle builds them without recursion; a repr would recurse).
    good = pickle.dumps(("ok", (1, 2)), protocol=2)[2:-1]
    payload = b"\x80\x02]" + good + b"a" + b"]" * 100_000 + b"a" * 100_000 + good + b"a."
    ok, bad = decode_pickle(payload)
    assert ok == [("ok", (1, 2))] * 2
    assert bad == [Rejection.NOT_A_DATAPOINT]


def test_one_non_utf8_python2_name_drops_alone() -> None:
    # carbon-relay under Python 2: names are py2 str (SHORT_BINSTRING); one of 500 is not UTF-8.
    elements = [f"relay.metric.{n}".encode() for n in range(500)]
    elements[250] = b"relay.\xff\xfe"
    body = b"".join(b"U" + bytes([len(name)]) + name + b"K\x07K\x08\x86\x86a" for name in elements)
    payload = b"\x80\x02]" + body + b"."
    ops = {op.name for op, _, _ in pickletools.genops(payload)}
    assert "SHORT_BINSTRING" in ops
    good, bad = decode_pickle(payload)
    assert len(good) == 499 and ("relay.metric.249", (7, 8)) in good
    assert bad == [Rejection.NAME_NOT_UTF8]


def test_shared_sub_lists_are_refused_and_described_briefly() -> None:
    # 201 bytes that unpickle to eight levels of ten references: 10**8 leaves to a repr.
    shared: object = "x"
    for _ in range(8):
        shared = [shared] * 10
    payload = pickle.dumps(shared, protocol=2)
    assert len(payload) < 250
    good, refused = decode_with(payload, validator())
    assert good == [] and refused.counts == {Rejection.NOT_A_DATAPOINT: 10}
    assert len(str(refused.first)) < 200


def test_messages_are_escaped_one_line() -> None:
    with pytest.raises(BadInput) as refused:
        datapoint(("forged\nlog line\x1b[31m", (1, 2)))
    assert "\n" not in str(refused.value) and "\x1b" not in str(refused.value)
    assert "forged\\nlog line\\x1b" in str(refused.value)


def test_numbers_keep_the_senders_types() -> None:
    _, (ts, value) = datapoint(("a", (1539850000, 2.0)))
    assert type(ts) is int and type(value) is float
    assert datapoint((b"bytes.name", (1.5, -(2**63)))) == ("bytes.name", (1.5, -(2**63)))


def test_datagram_as_seed_data_sends_it() -> None:
    assert decode_datagram(msgpack.packb(("horizon.test.udp", [1539850000, 5.0]))) == (
        "horizon.test.udp", (1539850000, 5.0))


def nested(depth: int) -> bytes:
    return b"\x91" * depth + msgpack.packb(("a", [1, 2]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", Rejection.MSGPACK_UNREADABLE),  # never-used msgpack byte
        (msgpack.packb(("a", [1, 2]))[:-1], Rejection.MSGPACK_UNREADABLE),  # truncated
        (msgpack.packb(("a", [1, 2])) * 2, Rejection.MSGPACK_UNREADABLE),  # two objects in one datagram
        (b"", Rejection.MSGPACK_UNREADABLE),
        (b"\x92\xa3a\xed\xa0\x80\x92\x01\x02", Rejection.MSGPACK_UNREADABLE),  # str holding a surrogate
        (nested(100_000), Rejection.MSGPACK_UNREADABLE),  # msgpack's own depth bound
        (nested(1000), Rejection.NOT_A_DATAPOINT),  # decodes; its repr would recurse 1,000 deep
        (msgpack.packb(("horizon.test.params", 1)), Rejection.NOT_A_DATAPOINT),  # seed_data's connect test
        (msgpack.packb({"a": [1, 2]}), Rejection.NOT_A_DATAPOINT),
        (msgpack.packb((b"\xff", [1, 2]), use_bin_type=True), Rejection.NAME_NOT_UTF8),
        (msgpack.packb(("a", [1, msgpack.ExtType(5, b"x")])), Rejection.NOT_A_NUMBER),
        (msgpack.packb(("a" * 2000, [1, 2])), Rejection.NAME_TOO_LONG),
    ],
)
def test_bad_datagrams_are_rejected(data: bytes, reason: Rejection) -> None:
    with pytest.raises(BadInput) as refused:
        decode_datagram(data)
    assert refused.value.reason is reason
    assert len(str(refused.value)) < 200


def test_plaintext_lines() -> None:
    assert decode_line(b"stats.a 12 1539850000") == ("stats.a", (1539850000, 12))
    assert decode_line(b"stats.a  -1.5e3\t1539850000.25") == ("stats.a", (1539850000.25, -1500.0))
    assert decode_line(b"stats.a .5 1539850000") == ("stats.a", (1539850000, 0.5))


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b"stats.a 12", Rejection.LINE_FIELDS), (b"stats.a 12 1 extra", Rejection.LINE_FIELDS),
     (b"", Rejection.LINE_FIELDS), (b"stats.a twelve 1539850000", Rejection.NOT_A_NUMBER),
     (b"stats.a nan 1539850000", Rejection.NOT_A_NUMBER), (b"stats.a 1_000 1539850000", Rejection.NOT_A_NUMBER),
     (b"stats.a 1e999 1539850000", Rejection.NOT_FINITE), (b"stats.a 12 inf", Rejection.NOT_A_NUMBER),
     (b"stats.a " + b"9" * 5000 + b" 1539850000", Rejection.NOT_A_NUMBER),  # int() of it raises ValueError
     (b"stats.a 18446744073709551616 1539850000", Rejection.OUT_OF_RANGE),
     (b"\xff\xfe 1 2", Rejection.NAME_NOT_UTF8), (b"\xed\xa0\x80 1 2", Rejection.NAME_NOT_UTF8),
     (b"a\x00b 1 2", Rejection.NAME_CHARACTERS), (b"n" * 1025 + b" 1 2", Rejection.NAME_TOO_LONG)],
)
def test_bad_plaintext_lines_are_rejected(line: bytes, reason: Rejection) -> None:
    with pytest.raises(BadInput) as refused:
        decode_line(line)
    assert refused.value.reason is reason
    assert len(str(refused.value)) < 200


def test_random_bytes_raise_nothing_but_bad_input() -> None:
    rng = random.Random(10)
    decoders = (lambda data: decode_with(data, validator()), decode_datagram, decode_line)
    seeds = [pickle.dumps([("a.b", (1, 2.5))] * 3, protocol=2), msgpack.packb(("a.b", [1, 2.5])), b"a.b 2.5 1"]
    for decode, seed in zip(decoders, seeds, strict=True):
        for _ in range(3000):
            data = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                decode(bytes(data))
            except BadInput as exc:
                assert len(str(exc)) < 200
