"""Roomba: keeps every series to its window, sorted, one value per timestamp (docs/horizon.md#roomba).

Each pass, for every key in ``<namespace>unique_metrics`` (split between ``ROOMBA_PROCESSES`` processes):
read the value, decode it, sort the datapoints (by timestamp, then value), keep those newer than
``now - duration`` with one value per timestamp, and write that back in Roomba's format
(:func:`skyline_analyzer.codec.encode_as_roomba`). A key whose newest datapoint is older than the window,
or whose value cannot be decoded ("zapped", as the original did), is deleted and removed from the set.

**Dedupe keeps the smallest value** of a duplicated timestamp, because the first of a sorted run of equal
timestamps is kept (PRESERVE H4: the original's documented quirk, not "last received wins").

**Fast path.** Keys are read a batch at a time (one MGET). A value whose timestamps already increase and
whose numbers are packed as a rewrite would pack them keeps exactly a byte suffix of itself
(:func:`skyline_analyzer.horizon.suffix.kept_from`): such a key is left alone when nothing is old, and
otherwise cut in Redis at that offset, without decoding it to Python or sending it back. Every other
value takes the reference path above (:meth:`Vacuum.plan`), which decides exactly as before; both store
the same bytes.

**Atomic with respect to APPEND.** Workers keep appending while Roomba works. The original WATCHed the key
and retried when it changed. Here each write is one Lua script on the series key alone (a script on Redis
Cluster may touch one hash slot only): it re-checks the key and stores the new start of the value, then
the key's bytes from an offset on (``SET key prefix .. GETRANGE(key, offset, -1)``). Writers only ever
append, so whatever lies beyond the length Roomba read arrived meanwhile and is kept after the rewritten
part, exactly as if it had been appended just after the rewrite. Only when the part Roomba read has itself changed (a
concurrent rewrite) is the key counted ``blocked`` and retried. A deleted key is removed from the set by a
separate SREM afterwards (idempotent; a worker that appends to the key again SADDs it again).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

import redis

from skyline_analyzer import keys, storage
from skyline_analyzer.codec import decode_pairs, encode_as_roomba
from skyline_analyzer.config import Settings
from skyline_analyzer.connections import RedisLink, connect
from skyline_analyzer.defaults import DEFAULTS
from skyline_analyzer.detection.series import is_number
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.excerpt import LIMIT, describe, escape
from skyline_analyzer.horizon.stop_flag import child_main
from skyline_analyzer.horizon.suffix import kept_from
from skyline_analyzer.slices import assigned_slice

log = logging.getLogger(__name__)

#: Seconds between the starts of two passes (hard-coded in the original).
PASS_INTERVAL = 60.0
#: Seconds between checks on the vacuum processes.
SUPERVISE_SECONDS = 0.1
#: Bytes of the value's start and end the write-back compares to detect a concurrent rewrite.
FINGERPRINT_BYTES = 32
#: Times a key found rewritten under us is retried in one pass.
MAX_BLOCKED_RETRIES = 10
#: Keys of the first read of a pass, before the size of a value is known, and the most of any read.
FIRST_BATCH_KEYS = 16
MAX_BATCH_KEYS = 1000

# KEYS: the series key. ARGV: length read, its first and last bytes, the offset from which the key's bytes
# are kept, the bytes put before them. The reference path sends the whole new value and the length read
# as the offset (keeping only what was appended since); the fast path sends no bytes and the offset of
# the first datapoint kept. Returns -1 if what was read has changed, 0 if the key was deleted, 1 if
# rewritten, 2 if rewritten with datapoints appended since the read kept at its end.
_WRITE = """
local seen = tonumber(ARGV[1])
local now_len = redis.call('STRLEN', KEYS[1])
if now_len < seen then return -1 end
if seen > 0 then
  if redis.call('GETRANGE', KEYS[1], 0, #ARGV[2] - 1) ~= ARGV[2] then return -1 end
  if redis.call('GETRANGE', KEYS[1], seen - #ARGV[3], seen - 1) ~= ARGV[3] then return -1 end
end
local offset = tonumber(ARGV[4])
local value = ARGV[5]
if now_len > offset then
  local kept = redis.call('GETRANGE', KEYS[1], offset, -1)
  if value == '' then value = kept else value = value .. kept end
end
if value == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], value)
if now_len > seen then return 2 end
return 1
"""


@dataclass
class VacuumResult:
    """The counts one vacuum logs (docs/horizon.md#roomba): keys seen, rewritten, deleted, retried, and kept."""

    keys: int = 0
    trimmed: int = 0
    euthanized: int = 0
    blocked: int = 0
    active: int = 0
    datapoints_removed: int = 0
    concurrent_appends: int = 0


@dataclass(frozen=True)
class Write:
    """What Roomba stores for one key: ``prefix`` then the key's bytes from ``offset`` on."""

    key: bytes
    raw: bytes
    offset: int
    prefix: bytes
    removed: int
    zapped: bool

    def args(self) -> list[Any]:
        """The script's ARGV."""
        tail = self.raw[-FINGERPRINT_BYTES:] if self.raw else b""
        return [len(self.raw), self.raw[:FINGERPRINT_BYTES], tail, self.offset, self.prefix]


def trim(pairs: list[Any], cutoff: float) -> tuple[list[tuple[Any, Any]] | None, int]:
    """The datapoints Roomba keeps, and how many it removes.

    Returns ``(None, 0)`` when the value is to be left alone (empty, or a lone recent scalar), and an
    empty list when the key is to be deleted. Raises ValueError or TypeError for data that is not a list
    of numeric pairs (the caller zaps such a key).
    """
    if not pairs:
        return None, 0
    first = pairs[0]
    if not isinstance(first, (list, tuple)):
        # The original's rule for a value that is a bare number rather than datapoints.
        if not is_number(first):
            raise ValueError(f"not a datapoint: {describe(first)}")
        return ([], len(pairs)) if first < cutoff else (None, 0)
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not (is_number(pair[0])
                                                                         and is_number(pair[1])):
            raise ValueError(f"not a (timestamp, value) datapoint: {describe(pair)}")
    ordered = sorted(pairs)
    if ordered[-1][0] < cutoff:
        return [], len(pairs)
    kept: list[tuple[Any, Any]] = []
    last = None
    for timestamp, value in ordered:
        # Sorted, so the first of equal timestamps has the smallest value: that one is kept (H4).
        if timestamp > cutoff and timestamp != last:
            kept.append((timestamp, value))
            last = timestamp
    return kept, len(pairs) - len(kept)


def shown_key(key: bytes) -> str:
    """A key as logs show it: bounded and escaped (whoever writes to Redis chooses its bytes)."""
    return escape(key[: 2 * LIMIT].decode("utf-8", "backslashreplace"))


class Vacuum:
    """Vacuums keys of one namespace with one connection.

    :meth:`run` reads keys in batches and takes the fast path where it can (``fast=False`` sends every
    value to the reference path); :meth:`run_per_key` is the v1 loop, one GET and one write per key, with
    the reference path only: the baseline ``benchmarks/roomba.py`` measures against.
    """

    def __init__(self, conn: redis.Redis, namespace: str, duration: int,
                 batch_bytes: int = DEFAULTS["ROOMBA_BATCH_BYTES"], fast: bool = True) -> None:
        self.conn = conn
        self.unique_set = keys.unique_metrics(namespace)
        self.duration = duration
        self.batch_bytes = batch_bytes
        self.fast = fast
        self._script = conn.register_script(_WRITE)

    def plan(self, key: bytes, raw: bytes, cutoff: float) -> Write | None:
        """What to store for ``key`` whose value was ``raw``; None to leave it as it is."""
        if self.fast and raw:
            found = kept_from(raw, cutoff)
            if found is not None:
                offset, removed = found
                return Write(key, raw, offset, b"", removed, False) if offset else None
        zapped = False
        try:
            kept, removed = trim(decode_pairs(raw, shown_key(key)), cutoff)
        except (SeriesFormatError, TypeError, ValueError) as exc:
            log.info("horizon.roomba :: vacuum Euthanizing %s (%s)", shown_key(key), exc)
            kept, removed, zapped = [], 0, True
        if raw and kept is None:
            return None
        new_value = encode_as_roomba(kept) if kept else b""
        if raw and new_value == raw:
            return None
        return Write(key, raw, len(raw), new_value, removed, zapped)

    def write_back(self, key: bytes, raw: bytes, new_value: bytes) -> int:
        """Replace the ``raw`` Roomba read with ``new_value`` (``b""`` deletes), keeping later appends.

        Returns -1 when ``raw`` is no longer the start of the value (nothing written), 0 when the key was
        deleted and removed from the set, 1 when rewritten, 2 when rewritten with appends kept at its end.
        """
        return self._store(Write(key, raw, len(raw), new_value, 0, False))

    def _store(self, write: Write) -> int:
        outcome = int(self._script(keys=[write.key], args=write.args()))
        if outcome == 0:
            self.forget([write.key])
        return outcome

    def store(self, writes: list[Write]) -> list[int]:
        """Every write of a batch in one pipeline, then one SREM of the keys deleted."""
        outcomes = self._send(writes)
        missing = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, redis.exceptions.NoScriptError)]
        if missing:
            # A restarted or flushed Redis forgot the script: load it again once, then resend.
            self.conn.script_load(_WRITE)
            for i, outcome in zip(missing, self._send([writes[i] for i in missing]), strict=True):
                outcomes[i] = outcome
        # An error answer (e.g. the key is no longer a string) counts as blocked: the retry reads the key
        # again, on its own if it is not a string. One log line per batch, whatever the number of errors.
        counted = [-1 if isinstance(outcome, Exception) else int(outcome) for outcome in outcomes]
        failed = [(write, outcome) for write, outcome in zip(writes, outcomes, strict=True)
                  if isinstance(outcome, Exception)]
        if failed:
            log.info("horizon.roomba :: vacuum could not write %d keys, the first %s (%s)", len(failed),
                     shown_key(failed[0][0].key), escape(str(failed[0][1])[:LIMIT]))
        deleted = [write.key for write, outcome in zip(writes, counted, strict=True) if outcome == 0]
        if deleted:
            self.forget(deleted)
        return counted

    def forget(self, deleted: list[bytes]) -> None:
        """Take keys Roomba deleted out of the set, unless a worker has written them again meanwhile.

        The delete and the SREM cannot be one script on a Redis Cluster (the set lives on another slot).
        A worker that re-creates a key between them has already sent its SADD, which the SREM would undo:
        so the SREM goes first, then every key that exists again is added back. A worker's APPEND after
        that check is followed by its own SADD. Each step is idempotent.
        """
        self.conn.srem(self.unique_set, *deleted)
        pipe = self.conn.pipeline(transaction=False)
        for key in deleted:
            pipe.exists(key)
        back = [key for key, exists in zip(deleted, pipe.execute(), strict=True) if exists]
        if back:
            self.conn.sadd(self.unique_set, *back)

    def _send(self, writes: list[Write]) -> list[Any]:
        if storage.is_cluster(self.conn):
            # redis-py's cluster pipeline refuses scripts: one EVALSHA per key, each routed to its slot.
            return [self._one(write) for write in writes]
        pipe = self.conn.pipeline(transaction=False)
        for write in writes:
            pipe.evalsha(self._script.sha, 1, write.key, *write.args())
        return pipe.execute(raise_on_error=False)

    def _one(self, write: Write) -> Any:
        try:
            return self.conn.evalsha(self._script.sha, 1, write.key, *write.args())
        except redis.RedisError as exc:
            return exc

    @staticmethod
    def _count(write: Write, outcome: int, result: VacuumResult) -> bool:
        """Count a write's outcome; False when the key changed under us and should be retried."""
        if outcome < 0:
            result.blocked += 1
            return False
        result.datapoints_removed += write.removed
        if outcome == 0:
            result.euthanized += 1
            return True
        result.active += 1
        if outcome == 2:
            result.concurrent_appends += 1
        if not write.zapped and write.raw:
            result.trimmed += 1
        return True

    def key(self, key: bytes, cutoff: float, result: VacuumResult) -> bool:
        """Vacuum one key on its own; False when it changed under us and should be retried."""
        try:
            raw = self.conn.get(key)
        except redis.ResponseError as exc:
            # Not a string (WRONGTYPE): the original's "zap" of anything it cannot read.
            log.info("horizon.roomba :: vacuum Euthanizing %s (%s)", shown_key(key), exc)
            self.conn.delete(key)
            self.forget([key])
            result.euthanized += 1
            return True
        write = self.plan(key, raw if raw is not None else b"", cutoff)
        if write is None:
            result.active += 1
            return True
        return self._count(write, self._store(write), result)

    def _batch(self, batch: list[bytes], cutoff: float, result: VacuumResult) -> tuple[list[bytes], int]:
        """Vacuum ``batch``: the keys to retry, and the size of its largest value."""
        retry: list[bytes] = []
        writes: list[Write] = []
        largest = 0
        # On a Redis Cluster, keys whose slot cannot be read now are left out: they wait for the next pass.
        read, values = storage.fetch(self.conn, batch)
        for key, raw in zip(read, values, strict=True):
            if raw is None:
                # Gone, or not a string (MGET cannot tell): the per-key path handles both as before.
                if not self.key(key, cutoff, result):
                    retry.append(key)
                continue
            largest = max(largest, len(raw))
            write = self.plan(key, raw, cutoff)
            if write is None:
                result.active += 1
            else:
                writes.append(write)
        for write, outcome in zip(writes, self.store(writes), strict=True):
            if not self._count(write, outcome, result):
                retry.append(write.key)
        return retry, largest

    def run(self, work: Sequence[bytes], now: float | None = None) -> VacuumResult:
        """Vacuum every key in ``work``, a batch at a time; keys found rewritten meanwhile are retried later.

        A batch holds about ``batch_bytes`` of values, judged by the largest value read so far.
        """
        result = VacuumResult(keys=len(work))
        cutoff = (time.time() if now is None else now) - self.duration
        pending = deque(work)
        retries: dict[bytes, int] = {}
        largest = 0
        while pending:
            size = FIRST_BATCH_KEYS if largest == 0 else min(MAX_BATCH_KEYS, max(1, self.batch_bytes // largest))
            batch = [pending.popleft() for _ in range(min(size, len(pending)))]
            retry, batch_largest = self._batch(batch, cutoff, result)
            largest = max(largest, batch_largest)
            for key in retry:
                if retries.get(key, 0) < MAX_BLOCKED_RETRIES:
                    retries[key] = retries.get(key, 0) + 1
                    pending.append(key)
        return result

    def run_per_key(self, work: Sequence[bytes], now: float | None = None) -> VacuumResult:
        """Vacuum every key in ``work`` one at a time (the v1 loop); keys found rewritten are retried later."""
        result = VacuumResult(keys=len(work))
        cutoff = (time.time() if now is None else now) - self.duration
        pending = deque(work)
        retries: dict[bytes, int] = {}
        while pending:
            key = pending.popleft()
            if not self.key(key, cutoff, result) and retries.get(key, 0) < MAX_BLOCKED_RETRIES:
                retries[key] = retries.get(key, 0) + 1
                pending.append(key)
        return result


def vacuum(i: int, namespace: str, duration: int, settings: Settings, now: float | None = None,
           conn: redis.Redis | None = None) -> VacuumResult:
    """One vacuum process's work: its share of ``<namespace>unique_metrics``, then a summary log line."""
    conn = conn if conn is not None else connect(settings)
    started = time.monotonic()
    members = sorted(conn.smembers(keys.unique_metrics(namespace)))
    work = list(assigned_slice(sorted(members), i, settings.ROOMBA_PROCESSES))
    result = Vacuum(conn, namespace, duration, settings.ROOMBA_BATCH_BYTES).run(work, now)
    log.info(
        "horizon.roomba :: vacuum %d of %s: operated on %d keys of %d in %.2fs; blocked %d, euthanized %d, "
        "trimmed %d, active %d, datapoints removed %d, kept concurrent appends on %d",
        i, namespace, result.keys, len(members), time.monotonic() - started, result.blocked, result.euthanized,
        result.trimmed, result.active, result.datapoints_removed, result.concurrent_appends,
    )
    return result


def _vacuum_process(i: int, namespace: str, duration: int, settings: Settings) -> None:
    try:
        vacuum(i, namespace, duration, settings)
    except (redis.RedisError, OSError) as exc:
        log.error("horizon.roomba :: vacuum %d of %s failed: %s", i, namespace, exc)


def roomba_pass(settings: Settings, context: BaseContext, stop: threading.Event) -> None:
    """Vacuum every namespace with ``ROOMBA_PROCESSES`` processes each, killing them after ``ROOMBA_TIMEOUT``."""
    windows = [(settings.FULL_NAMESPACE, settings.FULL_DURATION + settings.ROOMBA_GRACE_TIME)]
    if settings.OCULUS_HOST != "":
        windows.insert(0, (settings.MINI_NAMESPACE, settings.MINI_DURATION + settings.ROOMBA_GRACE_TIME))
    children = [
        context.Process(target=child_main, args=(_vacuum_process, i, namespace, duration, settings),
                        name=f"roomba-{i}")
        for namespace, duration in windows
        for i in range(1, settings.ROOMBA_PROCESSES + 1)
    ]
    for child in children:
        child.start()
    deadline = time.monotonic() + settings.ROOMBA_TIMEOUT
    while any(child.is_alive() for child in children):
        if time.monotonic() >= deadline or stop.is_set():
            if not stop.is_set():
                log.error("horizon.roomba :: timed out after %ss, terminating the vacuum processes",
                          settings.ROOMBA_TIMEOUT)
            for child in children:
                if child.is_alive():
                    # Vacuum processes ignore SIGTERM (see child_main).
                    child.kill()
            break
        time.sleep(SUPERVISE_SECONDS)
    for child in children:
        child.join()


def run_roomba(settings: Settings, stop: threading.Event, context: BaseContext | None = None,
               interval: float = PASS_INTERVAL) -> None:
    """The Roomba thread: a pass at most every ``interval`` seconds until ``stop`` is set."""
    context = context or multiprocessing.get_context("fork")
    link = RedisLink(settings)
    while not stop.is_set():
        started = time.monotonic()
        if not link.ping():
            stop.wait(link.backoff())
            link.reconnect()
            continue
        roomba_pass(settings, context, stop)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    link.close()
