"""Roomba benchmark: the cost per key of a vacuum, the v1 loop against the batched fast path, same keys, same run.

A private redis-server holds two identical copies (namespaces ``ref.`` and ``new.``) of ``--keys`` series
in Horizon's format: 1,451 datapoints a minute apart (int timestamp, float value), one of them at or before
the cutoff, so every key has a minute to drop, as at each pass of a running Roomba. A share of the keys
(``--odd``, 5% by default) is something else, cycling through: unsorted, a duplicated timestamp, integer
counters, float32 values, float timestamps, garbage bytes (zapped), all datapoints old (deleted), and a
key that is not a string.

Each round resets both copies, then vacuums them chunk by chunk: the reference (``run_per_key`` with
``fast=False``: one GET, decode, sort, trim, re-encode and write per key, as in v1) on ``ref.`` and the
batched fast path (``run``) on the same chunk of ``new.``, alternating which goes first. It then checks
that both copies hold byte-identical values and sets and that both counted the same, and repeats the
vacuum on the trimmed keys (nothing left to drop: the steady state of a key vacuumed twice in a minute).
It prints, per engine and pass, the median wall time per key (and the spread over chunks), the client's
and Redis's CPU per key, the ratio reference / fast, and the time a pass over 250,000 keys would take.

    .venv/bin/python benchmarks/roomba.py                       # 20,000 keys, 3 rounds
    .venv/bin/python benchmarks/roomba.py --keys 2000 --rounds 1  # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import msgpack
import numpy as np
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer.codec import encode  # noqa: E402
from skyline_analyzer.harness import private_redis  # noqa: E402
from skyline_analyzer.horizon.roomba import Vacuum, VacuumResult  # noqa: E402

NOW = 1_700_000_000
WINDOW = 86_400 + 600  # FULL_DURATION + ROOMBA_GRACE_TIME
CUTOFF = NOW - WINDOW
STEP = 60
POINTS = WINDOW // STEP + 1  # 1,451: one at or before the cutoff, 1,450 kept
ODD_KINDS = ("unsorted", "duplicate", "int_counter", "float32", "float_timestamps", "garbage", "all_old",
             "not_a_string")
#: Horizon's record: fixarray(2), uint32 timestamp, float64 value (what packb((int, float)) gives).
HORIZON_RECORD = np.dtype([("array", "u1"), ("ts_type", "u1"), ("ts", ">u4"), ("value_type", "u1"),
                           ("value", ">f8")])
PASSES = ("trim", "steady")
ENGINES = ("reference", "fast")
TARGET_KEYS = 250_000


def horizon_value(rng: np.random.Generator, start: int) -> bytes:
    """A series of POINTS datapoints from ``start``, packed as Horizon appends them (vectorised)."""
    records = np.empty(POINTS, dtype=HORIZON_RECORD)
    records["array"], records["ts_type"], records["value_type"] = 0x92, 0xCE, 0xCB
    records["ts"] = start + STEP * np.arange(POINTS)
    records["value"] = rng.normal(100.0, 10.0, POINTS)
    return records.tobytes()


def odd_value(kind: str, rng: np.random.Generator, start: int) -> bytes | None:
    """A value of one odd ``kind`` (None: the key is made a set instead)."""
    stamps = [start + STEP * i for i in range(POINTS)]
    values = rng.normal(100.0, 10.0, POINTS).tolist()
    pairs: list[tuple[int | float, int | float]] = list(zip(stamps, values, strict=True))
    if kind == "unsorted":
        pairs[-1], pairs[-2] = pairs[-2], pairs[-1]
    elif kind == "duplicate":
        pairs.append((stamps[-3], 1.0))
    elif kind == "int_counter":
        pairs = [(ts, 100 + 3 * i) for i, ts in enumerate(stamps)]
    elif kind == "float32":
        return b"".join(b"\x92\xce" + ts.to_bytes(4, "big") + b"\xca" + np.float32(v).byteswap().tobytes()
                        for ts, v in pairs)
    elif kind == "float_timestamps":
        pairs = [(ts + 0.5, v) for ts, v in pairs]
    elif kind == "garbage":
        return rng.bytes(200)
    elif kind == "all_old":
        pairs = [(ts - 2 * WINDOW, v) for ts, v in pairs]
    elif kind == "not_a_string":
        return None
    return encode(pairs)


def series_values(count: int, odd_share: float) -> list[bytes | None]:
    rng = np.random.default_rng(15)
    every = max(1, round(1 / odd_share)) if odd_share > 0 else 0
    values: list[bytes | None] = []
    for i in range(count):
        start = CUTOFF - int(rng.integers(0, STEP))  # the first datapoint is at or before the cutoff
        if every and i % every == every - 1:
            values.append(odd_value(ODD_KINDS[(i // every) % len(ODD_KINDS)], rng, start))
        else:
            values.append(horizon_value(rng, start))
    return values


def reset(conn: redis.Redis, names: list[bytes], values: list[bytes | None]) -> None:
    """Both copies as Horizon left them, with their unique-metrics sets."""
    for namespace in ("ref.", "new."):
        prefix = namespace.encode()
        conn.delete(f"{namespace}unique_metrics")
        for begin in range(0, len(names), 500):
            pipe = conn.pipeline(transaction=False)
            chunk = [prefix + name for name in names[begin : begin + 500]]
            pipe.delete(*chunk)
            for key, value in zip(chunk, values[begin : begin + 500], strict=True):
                if value is None:
                    pipe.sadd(key, b"x")
                else:
                    pipe.set(key, value)
            pipe.sadd(f"{namespace}unique_metrics", *chunk)
            pipe.execute()


def redis_cpu(conn: redis.Redis) -> float:
    info = conn.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Timings:
    """Per chunk: wall, client CPU and Redis CPU seconds, and keys."""

    wall: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    counts: VacuumResult = field(default_factory=VacuumResult)

    def per_key_us(self, series: list[float]) -> list[float]:
        return [1e6 * s / n for s, n in zip(series, self.keys, strict=True)]


def timed(conn: redis.Redis, engine: str, keys: list[bytes], timings: Timings) -> None:
    namespace = "ref." if engine == "reference" else "new."
    vacuum = Vacuum(conn, namespace, WINDOW, fast=engine == "fast")
    server, client, wall = redis_cpu(conn), time.process_time(), time.perf_counter()
    result = vacuum.run_per_key(keys, now=NOW) if engine == "reference" else vacuum.run(keys, now=NOW)
    timings.wall.append(time.perf_counter() - wall)
    timings.client.append(time.process_time() - client)
    timings.server.append(redis_cpu(conn) - server)
    timings.keys.append(len(keys))
    for name in (f.name for f in fields(VacuumResult)):
        setattr(timings.counts, name, getattr(timings.counts, name) + getattr(result, name))


def check_identical(conn: redis.Redis, names: list[bytes]) -> None:
    """Both copies hold the same bytes (and the same kind of key), and the same set members."""
    for begin in range(0, len(names), 500):
        chunk = names[begin : begin + 500]
        pipe = conn.pipeline(transaction=False)
        for name in chunk:
            pipe.type(b"ref." + name).type(b"new." + name)
        kinds = pipe.execute()
        ref = conn.mget([b"ref." + name for name in chunk])
        new = conn.mget([b"new." + name for name in chunk])
        for i, name in enumerate(chunk):
            if ref[i] != new[i] or kinds[2 * i] != kinds[2 * i + 1]:
                raise SystemExit(f"DIFFERENT values for {name!r}: the fast path changed what is stored")
    members = [{m.split(b".", 1)[1] for m in conn.smembers(f"{ns}unique_metrics")} for ns in ("ref.", "new.")]
    if members[0] != members[1]:
        raise SystemExit("DIFFERENT unique_metrics sets")


def spread(values: list[float]) -> str:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return (f"{statistics.median(values):9.1f} [{quartiles[0]:.1f}-{quartiles[2]:.1f}, "
            f"{min(values):.1f}-{max(values):.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20_000, help="series per copy (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each resetting both copies (default 3)")
    parser.add_argument("--chunk", type=int, default=1_000, help="keys per alternation of engines (default 1,000)")
    parser.add_argument("--odd", type=float, default=0.05, help="share of odd keys (default 0.05)")
    args = parser.parse_args()
    names = [f"bench.roomba.m{n:07d}".encode() for n in range(args.keys)]
    values = series_values(args.keys, args.odd)
    sample = horizon_value(np.random.default_rng(0), CUTOFF)
    assert sample == encode(msgpack.unpackb(b"\xdd" + POINTS.to_bytes(4, "big") + sample)), "not Horizon's bytes"
    print(f"{args.keys:,} keys of {POINTS:,} datapoints ({len(sample):,} bytes), {args.odd:.0%} odd, "
          f"{args.rounds} rounds, engines alternated every {args.chunk:,} keys")
    timings = {(p, e): Timings() for p in PASSES for e in ENGINES}
    with tempfile.TemporaryDirectory(prefix="roomba-bench-") as tmp, private_redis(Path(tmp)) as socket_path:
        conn = redis.Redis(unix_socket_path=socket_path)
        for round_ in range(args.rounds):
            reset(conn, names, values)
            for pass_ in PASSES:
                for c, begin in enumerate(range(0, args.keys, args.chunk)):
                    chunk = names[begin : begin + args.chunk]
                    order = ENGINES if (c + round_) % 2 == 0 else ENGINES[::-1]
                    for engine in order:
                        prefix = b"ref." if engine == "reference" else b"new."
                        timed(conn, engine, [prefix + name for name in chunk], timings[(pass_, engine)])
                check_identical(conn, names)
                print(f"round {round_ + 1}, {pass_} pass: both copies byte-identical", flush=True)
        conn.close()
    report(timings, args.keys)


def report(timings: dict[tuple[str, str], Timings], count: int) -> None:
    for pass_ in PASSES:
        ref, fast = timings[(pass_, "reference")], timings[(pass_, "fast")]
        if ref.counts != fast.counts:
            raise SystemExit(f"{pass_}: the engines counted differently: {ref.counts} != {fast.counts}")
        print(f"\n{pass_} pass ({'a minute to drop on each key' if pass_ == 'trim' else 'nothing to drop'}): "
              f"counts {ref.counts}")
        print("  engine     wall us/key median [quartiles, min-max over chunks]   client CPU   Redis CPU  "
              f"  {TARGET_KEYS:,} keys")
        for engine, t in (("reference", ref), ("fast", fast)):
            wall = t.per_key_us(t.wall)
            client, server = statistics.median(t.per_key_us(t.client)), statistics.median(t.per_key_us(t.server))
            print(f"  {engine:9}  {spread(wall):48}  {client:8.1f}  {server:9.1f}   "
                  f"{statistics.median(wall) * TARGET_KEYS / 1e6:7.1f} s")
        ratios = [r / f for r, f in zip(ref.per_key_us(ref.wall), fast.per_key_us(fast.wall), strict=True)]
        cpu = [(rc + rs) / (fc + fs) for rc, rs, fc, fs in zip(ref.client, ref.server, fast.client, fast.server,
                                                                strict=True)]
        print(f"  reference / fast, wall per chunk: {spread(ratios)}; client + Redis CPU: "
              f"{statistics.median(cpu):.1f}x")
    print(f"\n({count:,} keys per copy; per-key figures are per chunk, the estimate is median x {TARGET_KEYS:,} "
          "with one vacuum process)")


if __name__ == "__main__":
    main()
