"""Hostile inputs for Horizon's three protocols, by class, each with what the listener must count for it.

Every generator takes a seeded ``random.Random`` and returns one :class:`Hostile`: the bytes to send (a
whole pickle frame with its length prefix, one datagram, or one line with its newline) and the counts it
must produce. Where an input carries good elements beside the bad (a pickle frame), those are named
``fuzz.kept.*`` with timestamps no other input uses, so they can be found in Redis exactly once. The
classes are those of docs/horizon.md's "Hostile input": names that cannot be encoded, numbers whose
rendering or conversion explodes, shared and deep structures, code-running and memory-hungry pickles,
truncation, oversize, and random bytes.
"""

from __future__ import annotations

import pickle
import random
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

#: Reasons of inputs whose exact reason depends on random bytes: the campaign checks only their total.
ANY = "any"


@dataclass
class Hostile:
    """One input and what the listener must count for it."""

    kind: str
    data: bytes
    #: Counted as ``listen.<proto>_frames_rejected`` (pickle frames, datagrams, lines).
    frames: int = 0
    #: Counted as ``listen.pickle_datapoints_rejected``.
    elements: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: Good datapoints the input carries: accepted, and then stored exactly once.
    kept: list[tuple[str, tuple[int, float]]] = field(default_factory=list)
    #: Sent on a connection of its own that it ends (a truncated frame, an oversized length prefix).
    alone: bool = False


class Kept:
    """Good datapoints for hostile frames: ``fuzz.kept.<n>``, a timestamp never used twice per name."""

    def __init__(self, base: int, names: int = 20) -> None:
        self.base = base
        self.names = names
        self.count = 0

    def take(self, count: int) -> list[tuple[str, tuple[int, float]]]:
        taken = []
        for _ in range(count):
            n = self.count
            taken.append((f"fuzz.kept.{n % self.names}", (self.base + n // self.names, n * 0.5)))
            self.count += 1
        return taken


def prefixed(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def _random_bytes(rng: random.Random, low: int, high: int, exclude: bytes = b"") -> bytes:
    return bytes(b for b in rng.randbytes(rng.randint(low, high)) if b not in exclude)


# --- pickle ------------------------------------------------------------------------------------------

class _Reduce:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("a __reduce__ payload ran",))


#: Bad elements, each with the reason it is refused for.
BAD_ELEMENTS: list[tuple[Callable[[random.Random], Any], str]] = [
    (lambda rng: ("lone\ud800surrogate." + str(rng.random()), (1, 2)), "name_not_utf8"),
    (lambda rng: ("huge.int", (1_700_000_000, 10 ** rng.randint(4400, 5000))), "out_of_range"),
    (lambda rng: ("huge.int", (-(2 ** rng.randint(64, 20000)), 1.0)), "out_of_range"),
    (lambda rng: ("nan.value", (1, float("nan"))), "not_finite"),
    (lambda rng: ("inf.ts", (float("-inf"), 1)), "not_finite"),
    (lambda rng: ("bool.value", (1, True)), "not_a_number"),
    (lambda rng: ("str.value", (1, "12")), "not_a_number"),
    (lambda rng: ("", (1, 2)), "name_characters"),
    (lambda rng: ("has space\n" + "x" * rng.randint(0, 50), (1, 2)), "name_characters"),
    (lambda rng: ("n" * rng.randint(1025, 20000), (1, 2)), "name_too_long"),
    (lambda rng: ({"a": 1}, (1, 2)), "name_not_text"),
    (lambda rng: ("no.pair", 5), "not_a_datapoint"),
    (lambda rng: ("three", (1, 2, 3)), "not_a_datapoint"),
    (lambda rng: (b"py3.bytes.\xff\xfe", (1, 2)), "name_not_utf8"),
]


def _nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


def pickle_bad_elements(rng: random.Random, kept: Kept) -> Hostile:
    """A frame of good datapoints and bad elements of every kind, shuffled: each bad one drops alone."""
    good = kept.take(rng.randint(0, 20))
    chosen = [rng.choice(BAD_ELEMENTS) for _ in range(rng.randint(1, 6))]
    elements: list[Any] = [*good, *(make(rng) for make, _ in chosen)]
    rng.shuffle(elements)
    # Before protocol 3, Python 3 bytes pickle as a call to _codecs.encode: refused whole, not per element.
    protocol = 4 if any(isinstance(e[0], bytes) for e in elements if isinstance(e, tuple)) else rng.choice((0, 2, 4))
    try:
        payload = pickle.dumps(elements, protocol=protocol)
    except ValueError:  # protocol 0 writes integers in decimal, and int() refuses over 4,300 digits
        payload = pickle.dumps(elements, protocol=2)
    hostile = Hostile("pickle bad elements", prefixed(payload), elements=len(chosen),
                      reasons=Counter(reason for _, reason in chosen))
    # Kept in frame order: that is the order the listener accepts them in.
    hostile.kept = [e for e in elements if isinstance(e, tuple) and str(e[0]).startswith("fuzz.kept.")]
    return hostile


def pickle_python2_frame(rng: random.Random, kept: Kept) -> Hostile:
    """carbon-relay under Python 2: 500 names as py2 ``str``, one of them not UTF-8."""
    good = kept.take(499)
    bad_at = rng.randrange(500)
    body = b""
    for n in range(500):
        if n == bad_at:
            name, ts, value = b"relay." + bytes([rng.randint(0x80, 0xff)]) + b"\xfe", 1, 2.0
        else:
            entry = good[n if n < bad_at else n - 1]
            name, (ts, value) = entry[0].encode(), entry[1]
        body += b"U" + bytes([len(name)]) + name + b"J" + struct.pack("<i", ts) + b"G" + struct.pack(">d", value)
        body += b"\x86\x86a"
    return Hostile("pickle py2 non-UTF-8 name", prefixed(b"\x80\x02]" + body + b"."), elements=1,
                   reasons=Counter(name_not_utf8=1), kept=good)


def pickle_whole_frame(rng: random.Random, kept: Kept) -> Hostile:
    """A frame refused whole, for a reason known in advance."""
    shared: Any = "x"
    for _ in range(8):
        shared = [shared] * 10
    choices: list[tuple[str, bytes, str, int]] = [
        ("shared sub-lists", pickle.dumps(shared, protocol=2), "not_a_datapoint", 10),
        ("reduce payload", pickle.dumps([("a", (1, 2)), _Reduce()], protocol=rng.choice((0, 2, 4))),
         "pickle_unsafe", 0),
        ("memo index", b"]r" + rng.randint(1 << 20, (1 << 32) - 1).to_bytes(4, "little") + b".",
         "pickle_unreadable", 0),
        ("PUT index", b"(lp" + str(rng.randint(10**6, 10**11)).encode() + b"\n.", "pickle_unreadable", 0),
        ("counted length", b"\x80\x04\x8e" + rng.randint(1 << 30, 1 << 60).to_bytes(8, "little") + b"x.",
         "pickle_unreadable", 0),
        ("5000-digit LONG", b"(lp0\nL" + b"7" * rng.randint(4400, 5000) + b"L\na.", "pickle_unreadable", 0),
        ("empty payload", b"", "pickle_unreadable", 0),
        ("a dict", pickle.dumps({"a": (1, 2)}, protocol=2), "not_a_list", 0),
        ("deep element", _deep_pickle(rng.randint(1000, 100_000)), "not_a_datapoint", 1),
    ]
    kind, payload, reason, elements = rng.choice(choices)
    if elements:
        return Hostile(f"pickle {kind}", prefixed(payload), elements=elements, reasons=Counter({reason: elements}))
    return Hostile(f"pickle {kind}", prefixed(payload), frames=1, reasons=Counter({reason: 1}))


def _deep_pickle(depth: int) -> bytes:
    # Built by hand: pickle.dumps itself recurses and cannot write this.
    return b"\x80\x02]" + b"]" * depth + b"a" * depth + b"."


def pickle_garbage(rng: random.Random, kept: Kept) -> Hostile:
    """Random bytes not ending in STOP: never a pickle (an unknown opcode, a refused one, or truncated)."""
    payload = _random_bytes(rng, 1, 300, exclude=b".")
    return Hostile("pickle garbage", prefixed(payload), frames=1, reasons=Counter({ANY: 1}))


def pickle_truncated(rng: random.Random, kept: Kept) -> Hostile:
    """A good frame cut short, then the connection closes."""
    whole = prefixed(pickle.dumps([("cut", (1, 2.0))] * rng.randint(1, 50), protocol=2))
    return Hostile("pickle truncated", whole[: rng.randint(1, len(whole) - 1)], frames=1,
                   reasons=Counter(frame_truncated=1), alone=True)


def pickle_oversized(rng: random.Random, kept: Kept) -> Hostile:
    """A length prefix over MAX_PICKLE_FRAME_BYTES (1 MiB): the connection is closed unread."""
    length = rng.randint((1 << 20) + 1, (1 << 32) - 1)
    return Hostile("pickle oversized", struct.pack("!I", length) + rng.randbytes(rng.randint(0, 100)), frames=1,
                   reasons=Counter(frame_too_long=1), alone=True)


PICKLE = [pickle_bad_elements, pickle_bad_elements, pickle_python2_frame, pickle_whole_frame, pickle_whole_frame,
          pickle_garbage, pickle_truncated, pickle_oversized]


# --- UDP ---------------------------------------------------------------------------------------------

def udp_datagram(rng: random.Random, kept: Kept) -> Hostile:
    good = msgpack.packb(("fuzz.udp", [1_700_000_000, 1.5]))
    choices: list[tuple[str, bytes, str]] = [
        ("deep nesting", b"\x91" * rng.randint(500, 1000) + good, "not_a_datapoint"),
        ("deeper nesting", b"\x91" * rng.randint(2000, 60000) + good, "msgpack_unreadable"),
        ("surrogate in str", b"\x92\xa4a\xed\xa0\x80\x92\x01\x02", "msgpack_unreadable"),
        ("bin name not UTF-8", msgpack.packb((b"bad\xff", [1, 2]), use_bin_type=True), "name_not_utf8"),
        ("truncated", good[: rng.randint(0, len(good) - 1)], "msgpack_unreadable"),
        ("two objects", good * 2, "msgpack_unreadable"),
        ("nan", msgpack.packb(("nan.value", [1, float("nan")])), "not_finite"),
        ("bool", msgpack.packb(("bool.value", [1, True])), "not_a_number"),
        ("str value", msgpack.packb(("str.value", [1, "1"])), "not_a_number"),
        ("ext value", msgpack.packb(("ext.value", [1, msgpack.ExtType(rng.randint(0, 127), b"x")])), "not_a_number"),
        ("long name", msgpack.packb(("n" * rng.randint(1025, 60000), [1, 2])), "name_too_long"),
        ("map", msgpack.packb({"a": [1, 2]}), "not_a_datapoint"),
        ("no pair", msgpack.packb(("horizon.test.params", 1)), "not_a_datapoint"),
    ]
    kind, data, reason = rng.choice(choices)
    return Hostile(f"udp {kind}", data, frames=1, reasons=Counter({reason: 1}))


def udp_garbage(rng: random.Random, kept: Kept) -> Hostile:
    """Random bytes not starting an array: never a datapoint (unreadable, or some other object)."""
    data = bytes([rng.choice([b for b in range(256) if not (0x90 <= b <= 0x9f or b in (0xdc, 0xdd))])])
    data += rng.randbytes(rng.randint(0, 200))
    return Hostile("udp garbage", data, frames=1, reasons=Counter({ANY: 1}))


UDP = [udp_datagram, udp_datagram, udp_datagram, udp_garbage]


# --- plaintext ---------------------------------------------------------------------------------------

def plaintext_line(rng: random.Random, kept: Kept) -> Hostile:
    choices: list[tuple[str, bytes, str]] = [
        ("5000-digit number", b"digits " + b"9" * rng.randint(4400, 5000) + b" 1700000000", "not_a_number"),
        ("surrogate bytes", b"sur\xed\xa0\x80rogate 1 1700000000", "name_not_utf8"),
        ("not UTF-8", b"bad\xff\xfe 1 1700000000", "name_not_utf8"),
        ("NUL", b"a\x00b 1 1700000000", "name_characters"),
        ("two fields", b"only.two 1", "line_fields"),
        ("four fields", b"a.b 1 2 3", "line_fields"),
        ("nan", b"a.b nan 1700000000", "not_a_number"),
        ("1e999", b"a.b 1e999 1700000000", "not_finite"),
        ("huge int", b"a.b 1 " + str(2**64 + rng.randint(0, 10**6)).encode(), "out_of_range"),
        ("long name", b"n" * rng.randint(1025, 16000) + b" 1 1700000000", "name_too_long"),
        ("escape sequences", b"\x1b[31mred\x1b[0m 1 1700000000", "name_characters"),
    ]
    kind, line, reason = rng.choice(choices)
    return Hostile(f"plaintext {kind}", line + b"\n", frames=1, reasons=Counter({reason: 1}))


def plaintext_too_long(rng: random.Random, kept: Kept) -> Hostile:
    return Hostile("plaintext over-long line", b"x" * rng.randint(16400, 60000) + b"\n", frames=1,
                   reasons=Counter(line_too_long=1))


def plaintext_garbage(rng: random.Random, kept: Kept) -> Hostile:
    """Random bytes made to split into other than three fields: refused for that, whatever else they hold."""
    line = b"g" + _random_bytes(rng, 0, 200, exclude=b"\r\n")
    if len(line.split()) == 3:
        line += b" extra"
    return Hostile("plaintext garbage", line + b"\n", frames=1, reasons=Counter(line_fields=1))


PLAINTEXT = [plaintext_line, plaintext_line, plaintext_too_long, plaintext_garbage]

GENERATORS = {"pickle": PICKLE, "udp": UDP, "plaintext": PLAINTEXT}


def hostile_inputs(protocol: str, count: int, seed: int, kept: Kept) -> list[Hostile]:
    """``count`` inputs for ``protocol``, the same ones for the same seed."""
    rng = random.Random(f"{seed}:{protocol}")
    return [rng.choice(GENERATORS[protocol])(rng, kept) for _ in range(count)]
