"""The worker ("spin process") of one Analyzer run (docs/run.md#the-worker).

A worker takes its slice of ``metrics.unique_metrics``, fetches the values with MGET in chunks of
``MGET_CHUNK`` keys (so its memory depends on the chunk, not on the number of metrics; the next chunk is
fetched in a thread while this one is worked on: :func:`prefetched`, :func:`fetch_chunk`), decodes them and
hands each chunk to :func:`skyline_analyzer.detection.engine.analyse`, then applies the Redis side of the
verdicts (:mod:`skyline_analyzer.analyzer.history`) and, with ``SECOND_STAGE_ENABLED``, the second stage on
its candidates (:mod:`skyline_analyzer.analyzer.recheck`). It reports to the parent over a pipe with the typed
messages of :mod:`skyline_analyzer.analyzer.messages`.

Exception kinds (:class:`skyline_analyzer.exceptions.ExceptionKind`): ``TooShort``, ``Stale``, ``Boring``
(from the verdict), ``DeletedByRoomba`` (MGET returned nil: the key vanished after SMEMBERS) and ``Other``
(a corrupt or truncated value, a non-numeric or non-finite datapoint, or an unexpected error; one error
line names the metric and the reason).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import redis

from skyline_analyzer import codec, connections, keys, logs, storage
from skyline_analyzer.allocator import tune_allocator
from skyline_analyzer.analyzer import history, recheck, tune_record
from skyline_analyzer.analyzer.messages import ChunkDone, WorkerDone, WorkerSummary
from skyline_analyzer.bulk_reader import Reply
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.detection.reference import Recorder
from skyline_analyzer.detection.series import Series
from skyline_analyzer.exceptions import ExceptionKind, SeriesFormatError
from skyline_analyzer.slices import assigned_slice

log = logging.getLogger(__name__)

#: Keys fetched per MGET: bounds a worker's memory (a day of 60 s data is about 22 kB per key). 250 rather
#: than 500: Redis builds a reply of half the size, which stays in cache (its CPU for a run of 100,000
#: metrics 1.2-1.4 s instead of 1.7-2.2), and a run was 0.2-0.7 s faster in 9 of 10 paired runs
#: (docs/analyzer-optimizations.md#the-bulk-reader); 100 costs more in numpy's per-call overheads.
MGET_CHUNK = 250
#: Where the base names of each verdict exception are kept for the webapp.
EXCEPTION_SETS = {
    ExceptionKind.TOO_SHORT: keys.ANALYZER_TOO_SHORT,
    ExceptionKind.STALE: keys.ANALYZER_STALE,
    ExceptionKind.BORING: keys.ANALYZER_BORING,
}


#: Base names a worker holds before adding them to the exception sets. Each SADD waits for Redis, which is
#: busy building the workers' MGET replies: sent once per chunk, those waits were 0.28-0.31 s of a worker's
#: 3.6 s over 50,000 metrics (docs/analyzer-optimizations.md#where-a-worker-waits-the-seventh-session).
SETS_FLUSH_NAMES = 10_000


class ExceptionSetWriter:
    """The base names a worker adds to the exception sets (``EXCEPTION_SETS``), sent in one pipeline once
    ``SETS_FLUSH_NAMES`` are held and when the worker is done (the parent marks the sets only after every
    worker reported: nothing reads them in between)."""

    def __init__(self) -> None:
        self._members: dict[str, list[str]] = {}
        self._held = 0

    def add(self, key: str, base_name: str) -> None:
        self._members.setdefault(key, []).append(base_name)
        self._held += 1

    def flush(self, conn: Any, summary: WorkerSummary, *, done: bool) -> None:
        """Send what is held when ``done`` or past ``SETS_FLUSH_NAMES``; a failure is counted, not raised."""
        if not self._held or (not done and self._held < SETS_FLUSH_NAMES):
            return
        members, self._members, self._held = self._members, {}, 0
        try:
            pipe = conn.pipeline(transaction=False)
            for key, names in members.items():
                pipe.sadd(key, *names)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            summary.redis_set_errors += 1
            log.error("error :: could not add to the analyzer exception sets: %s", exc)


#: One fetched chunk: the names read and their values (None where the key does not exist).
Fetched = tuple[Sequence[str], list[bytes | memoryview | None]]


def fetch_chunk(conn: Any, names: Sequence[str]) -> Fetched:
    """The values of one chunk of full keys: the one place the worker reads series from Redis.

    Returns the names read and their values (None for a key that does not exist), in order. One MGET on a
    single Redis; on a Redis Cluster, slot-grouped MGETs, and the names whose slot cannot be read now are
    left out (not counted as processed: the parent reports them as unprocessed for this run).
    """
    return storage.fetch(conn, names)


def prefetched(settings: Settings, chunks: Sequence[Sequence[str]]) -> Iterator[Fetched]:
    """:func:`fetch_chunk` of every chunk, in order; the next chunk is fetched while the caller works.

    The fetch runs in a thread on a connection of its own (:func:`skyline_analyzer.storage.reader`): Redis
    assembles the next reply, and the socket read waits without the GIL, while this thread decodes and
    analyses the current chunk. At most two chunks' values are held at once, and a chunk's values are only
    valid until the caller asks for the next chunk (asking starts the fetch that reads into their buffer).
    A fetch error is raised by the ``next()`` that would have returned the chunk; closing the generator
    waits for the fetch in flight.
    """
    conn = storage.reader(settings)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as executor:
            pending = executor.submit(fetch_chunk, conn, chunks[0]) if chunks else None
            for following in (*chunks[1:], None):
                assert pending is not None
                fetched = pending.result()
                pending = None if following is None else executor.submit(fetch_chunk, conn, following)
                yield fetched
    finally:
        conn.close()


def decode_chunk(
    names: Sequence[str], raw_values: Sequence[bytes | memoryview | None], summary: WorkerSummary
) -> tuple[list[Series], list[str]]:
    """The decodable series of a chunk with their names; the rest counted under their exception key.

    Values read by the bulk reader (a :class:`skyline_analyzer.bulk_reader.Reply`) are decoded where they lie
    in its buffer.
    """
    present = [position for position, raw in enumerate(raw_values) if raw is not None]
    if len(present) < len(names):
        summary.exceptions[ExceptionKind.DELETED_BY_ROOMBA] += len(names) - len(present)
    kept_names = [names[position] for position in present]
    layout = None
    if isinstance(raw_values, Reply):
        layout = raw_values.buffer, [raw_values.starts[position] for position in present]
    decoded = codec.decode_many([raw_values[position] for position in present], kept_names, layout)
    series, kept = [], []
    for name, one in zip(kept_names, decoded, strict=True):
        if isinstance(one, SeriesFormatError):
            summary.exceptions[ExceptionKind.OTHER] += 1
            log.error("error :: %s not analysed: %s", name, one)
            continue
        series.append(one)
        kept.append(name)
    return series, kept


def _analyse(
    series: list[Series], names: list[str], settings: Settings, now: float, conn: Any, recorder: Recorder
) -> list[engine.Outcome | None]:
    """The outcomes for a chunk, after the Redis side of each verdict; if the batch call fails, each series
    alone (a failure is None)."""
    history.record_stale_candidates(conn, settings, series, names, now)
    try:
        return history.apply_second_order(conn, settings, engine.analyse(series, names, settings, now,
                                                                         recorder=recorder), now)
    except Exception:
        log.error("error :: analysing a chunk of %d metrics failed; retrying one by one", len(names),
                  exc_info=True)
    outcomes: list[engine.Outcome | None] = []
    for one, name in zip(series, names, strict=True):
        try:
            outcomes.extend(history.apply_second_order(
                conn, settings, engine.analyse([one], [name], settings, now, recorder=recorder), now))
        except Exception:
            log.error("error :: %s not analysed", name, exc_info=True)
            outcomes.append(None)
    return outcomes


def process_chunk(
    conn: Any,
    names: Sequence[str],
    raw_values: Sequence[bytes | memoryview | None],
    settings: Settings,
    now: float,
    recorder: Recorder,
    summary: WorkerSummary,
    sets: ExceptionSetWriter,
) -> list[Anomaly]:
    """Decode and analyse one fetched chunk; update ``summary`` and ``sets``; return its anomalies.

    An anomaly carries the value and timestamp of the last datapoint exactly as decoded.
    """
    namespace = settings.FULL_NAMESPACE
    algorithms = list(settings.ALGORITHMS)
    series, kept = decode_chunk(names, raw_values, summary)
    by_name = dict(zip(kept, series, strict=True))
    candidates: list[tuple[Anomaly, bool]] = []
    outcomes = _analyse(series, kept, settings, now, conn, recorder)
    tune_record.observe(recorder, series, outcomes)
    # Most series are neither filtered nor flagged: the loop does no more for them than test both.
    near_miss = recheck.near_miss_falses(settings)
    for name, outcome in zip(kept, outcomes, strict=True):
        if outcome is None:
            summary.exceptions[ExceptionKind.OTHER] += 1
            continue
        exception = outcome.exception
        if exception is not None:
            summary.exceptions[exception] += 1
            if exception in EXCEPTION_SETS:
                sets.add(EXCEPTION_SETS[exception], keys.base_name(namespace, name))
            continue
        verdict = outcome.verdict
        if verdict is not None and (verdict.anomalous or (near_miss and verdict.ensemble.count(False) in near_miss)):
            triggered = tuple(verdict.triggered(algorithms))
            candidates.append((Anomaly(verdict.datapoint, keys.base_name(namespace, name),
                                       by_name[name].last_timestamp, triggered), verdict.anomalous))
    anomalies = recheck.apply(conn, settings, candidates, by_name, now)
    for anomaly in anomalies:
        summary.anomaly_breakdown.update(anomaly.triggered)
    summary.processed += len(names)
    sets.flush(conn, summary, done=False)
    return anomalies


def spin_process(
    i: int,
    unique_metrics: Sequence[str],
    settings: Settings,
    now: float,
    parent_pid: int,
    results: Connection,
) -> None:
    """Worker ``i`` of a run: analyse the assigned slice and report over ``results`` (a pipe end)."""
    # The parent handles SIGTERM and SIGINT for the whole run; a worker dies on SIGTERM (the parent's
    # timeout kill) and leaves Ctrl-C to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Everything inherited from the parent (statsmodels, numpy, the names) is alive for the worker's short
    # life: frozen, the cyclic GC's full collections no longer walk it. Measured: the GC's share of a worker
    # over 100,000 metrics 0.18-0.32 s -> 0.03-0.07 s, a run 0.4 s faster (docs/analyzer-optimizations.md).
    gc.freeze()
    logs.worker_logging()
    tune_allocator()
    started = time.monotonic()
    log.info("spin_process started")
    assigned = assigned_slice(unique_metrics, i, settings.ANALYZER_PROCESSES)
    summary = WorkerSummary()
    if not assigned:
        results.send(WorkerDone(summary))
        return
    conn = connections.connect(settings)
    recorder = tune_record.recorder(settings, now)
    sets = ExceptionSetWriter()
    chunks = [assigned[lo : lo + MGET_CHUNK] for lo in range(0, len(assigned), MGET_CHUNK)]
    fetched = prefetched(settings, chunks)
    try:
        for chunk in chunks:
            if os.getppid() != parent_pid:
                log.info("parent process %d is gone, spin_process exiting", parent_pid)
                return
            try:
                names, raw_values = next(fetched)
                anomalies = process_chunk(conn, names, raw_values, settings, now, recorder, summary, sets)
            except (redis.RedisError, OSError) as exc:
                # The original returned without queueing counts when its MGET failed; the metrics already
                # done keep their counts here, the rest are reported as unprocessed by the parent.
                log.error("error :: spin_process failed to fetch %d metrics from Redis: %s", len(chunk), exc)
                break
            results.send(ChunkDone(summary.processed, anomalies))
        sets.flush(conn, summary, done=True)
        tune_record.store(recorder, conn)
        summary.elapsed = time.monotonic() - started
        recorder.flush()
        log.info("spin_process took %.2f seconds", summary.elapsed)
        results.send(WorkerDone(summary))
    finally:
        fetched.close()
        conn.close()
        results.close()
