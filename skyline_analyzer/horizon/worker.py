"""Horizon workers: APPEND the queued datapoints to Redis (docs/horizon.md#chunks-queues-and-workers).

For every datapoint: skip it if ``SKIP_LIST`` matches its name and ``DO_NOT_SKIP_LIST`` does not; ignore it
if its timestamp is more than ``MAX_RESOLUTION`` seconds before now (future timestamps are kept); otherwise
APPEND ``packb((timestamp, value))`` to ``metrics.<name>`` and SADD the key to ``metrics.unique_metrics``,
and, when ``OCULUS_HOST`` is set, do the same in the mini namespace.

The original executed one pipeline per datapoint. Here a worker drains up to :data:`BATCH_DATAPOINTS`
datapoints from the queue and writes them with one pipeline: the datapoints of one metric are concatenated
into a single APPEND (in arrival order) and the keys into one SADD, which leaves exactly the bytes the
per-datapoint APPENDs would have. That is what lets two workers keep up with 50,000 datapoints a second.

A datapoint that cannot be turned into a write is dropped alone and counted (``worker.datapoints_rejected``;
the listeners' checks make it 0), and any other failure of a batch is counted as lost
(``worker.datapoints_failed``): nothing a client sent can end a worker.
"""

from __future__ import annotations

import logging
import os
import queue
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import redis

from skyline_analyzer import keys
from skyline_analyzer.config import Settings
from skyline_analyzer.connections import RedisLink
from skyline_analyzer.excerpt import describe
from skyline_analyzer.horizon.counters import CounterRow
from skyline_analyzer.horizon.datapoints import Datapoint
from skyline_analyzer.horizon.name_cache import NameCache
from skyline_analyzer.matching import skipped

log = logging.getLogger(__name__)

#: Seconds a worker blocks on an empty queue before logging that it is idle (the original's 15 s).
QUEUE_TIMEOUT = 15.0
#: Most datapoints written per pipeline.
BATCH_DATAPOINTS = 5000
#: Seconds between log lines about datapoints a worker could not write (each is counted).
REJECTION_LOG_SECONDS = 10.0
#: Times a batch is written again after the connection failed under it, before it is counted as failed:
#: an outage loses nothing already queued, and an error that repeats cannot hold the worker forever.
MAX_WRITE_ATTEMPTS = 5


@dataclass
class WriteResult:
    """What one batch did; ``refused`` holds the first datapoint that could not be written, for the log."""

    written: int = 0
    skipped: int = 0
    too_old: int = 0
    rejected: int = 0
    refused: str = ""


class Writer:
    """Turns datapoints into one Redis pipeline, remembering each name's skip decision."""

    def __init__(self, settings: Settings) -> None:
        self.full_namespace = settings.FULL_NAMESPACE
        self.mini_namespace = settings.MINI_NAMESPACE if settings.OCULUS_HOST != "" else None
        self.max_resolution = settings.MAX_RESOLUTION
        self.skip_list = tuple(settings.SKIP_LIST)
        self.do_not_skip_list = tuple(settings.DO_NOT_SKIP_LIST)
        self.skip_cache = NameCache(settings.HORIZON_CACHE_BYTES)

    def skips(self, name: str) -> bool:
        decision = self.skip_cache.get(name)
        if decision is None:
            decision = skipped(name, self.skip_list, self.do_not_skip_list)
            self.skip_cache.put(name, decision)
        return decision

    def write(self, conn: redis.Redis, datapoints: Iterable[Datapoint], now: int) -> WriteResult:
        """APPEND and SADD ``datapoints`` with one pipeline; ``now`` is the integer time of the batch.

        A datapoint that cannot be turned into a write (a name that is not UTF-8, a number msgpack cannot
        pack: the listeners refuse both) is dropped alone and counted in ``rejected``. Raises whatever
        Redis raises; the batch may then be partly written.
        """
        result = WriteResult()
        cutoff = now - self.max_resolution
        packed: dict[str, list[bytes]] = {}
        for datapoint in datapoints:
            try:
                name, pair = datapoint
                if self.skips(name):
                    result.skipped += 1
                elif pair[0] < cutoff:
                    result.too_old += 1
                else:
                    value = msgpack.packb(pair)
                    if name not in packed:
                        name.encode("utf-8")  # the key Redis will be sent; a lone surrogate fails here
                        packed[name] = []
                    packed[name].append(value)
                    result.written += 1
            except Exception as exc:
                result.rejected += 1
                if not result.refused:
                    result.refused = f"{type(exc).__name__}: {describe(datapoint)}"
        if not packed:
            return result
        pipe = conn.pipeline(transaction=False)
        namespaces = [self.full_namespace] if self.mini_namespace is None else [self.full_namespace,
                                                                                self.mini_namespace]
        for namespace in namespaces:
            for name, parts in packed.items():
                pipe.append(keys.metric(namespace, name), b"".join(parts))
            pipe.sadd(keys.unique_metrics(namespace), *(keys.metric(namespace, name) for name in packed))
        pipe.execute()
        return result


def take_batch(work_queue: Any, timeout: float, limit: int = BATCH_DATAPOINTS) -> list[Datapoint]:
    """Block up to ``timeout`` for one chunk, then add whatever chunks are already waiting, up to ``limit``.

    Raises ``queue.Empty`` when nothing arrived in time.
    """
    batch = list(work_queue.get(timeout=timeout))
    while len(batch) < limit:
        try:
            batch.extend(work_queue.get_nowait())
        except queue.Empty:
            break
    return batch


def run_worker(index: int, settings: Settings, work_queue: Any, counters: CounterRow, stop: Any,
               parent_pid: int, poll: float = 1.0) -> None:
    """A worker process's body: write what arrives on ``work_queue`` (this worker's own) until stopped.

    After ``stop`` is set the worker writes what is still queued, then returns. ``poll`` bounds how long a
    stop or the agent's death goes unnoticed; an idle worker still logs "worker queue is empty and timed
    out" only every :data:`QUEUE_TIMEOUT` seconds, as the original did.
    """
    link = RedisLink(settings)
    writer = Writer(settings)
    idle_since = time.monotonic()
    last_rejection_log = -REJECTION_LOG_SECONDS
    unlogged = 0
    # A batch whose write the connection failed under, kept to write again once Redis answers.
    pending: list[Datapoint] = []
    attempts = 0
    log.info("horizon.worker :: worker %d started", index)
    while os.getppid() == parent_pid:
        stopping = stop.is_set()
        if not link.ping():
            if stopping:
                break
            _pause(link.backoff(), stop, parent_pid)
            link.reconnect()
            continue
        if pending:
            batch, pending = pending, []
        else:
            try:
                batch = take_batch(work_queue, min(poll, 0.2) if stopping else poll)
            except queue.Empty:
                if stopping:
                    break
                if time.monotonic() - idle_since >= QUEUE_TIMEOUT:
                    log.info("horizon.worker :: worker queue is empty and timed out")
                    idle_since = time.monotonic()
                batch = []
            else:
                idle_since = time.monotonic()
            attempts = 0
        if not batch:
            continue
        try:
            result = writer.write(link.conn, batch, int(time.time()))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            # v1.2.8 lost the batch here. It is kept and written again after the next successful PING; if
            # the failure hid a write that did happen, the datapoints are appended twice and Roomba keeps one
            # (docs/horizon.md#chunks-queues-and-workers).
            attempts += 1
            if attempts < MAX_WRITE_ATTEMPTS:
                pending = batch
                log.error("horizon.worker :: worker %d could not write %d datapoints (attempt %d), writing them "
                          "again once Redis answers: %s", index, len(batch), attempts, exc)
                continue
            counters.add("worker.datapoints_failed", len(batch))
            log.error("horizon.worker :: worker %d failed to write %d datapoints after %d attempts: %s", index,
                      len(batch), attempts, exc)
            continue
        except redis.RedisError as exc:
            # An answer from Redis, not an outage: writing the same batch again would fail the same way.
            counters.add("worker.datapoints_failed", len(batch))
            log.error("horizon.worker :: worker %d failed to write %d datapoints: %s", index, len(batch), exc)
            continue
        except Exception as exc:
            # A defect, not the input (each datapoint is caught alone): the batch is lost, the worker goes on.
            counters.add("worker.datapoints_failed", len(batch))
            log.error("horizon.worker :: worker %d failed to write %d datapoints: %s\n%s", index, len(batch),
                      type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
            continue
        counters.add("worker.datapoints_written", result.written)
        if result.skipped:
            counters.add("worker.datapoints_skipped", result.skipped)
        if result.too_old:
            counters.add("worker.datapoints_too_old", result.too_old)
        if result.rejected:
            counters.add("worker.datapoints_rejected", result.rejected)
            unlogged += result.rejected
            if time.monotonic() - last_rejection_log >= REJECTION_LOG_SECONDS:
                log.error("horizon.worker :: worker %d could not write %d datapoints, for instance %s", index,
                          unlogged, result.refused)
                unlogged = 0
                last_rejection_log = time.monotonic()
    if pending:
        counters.add("worker.datapoints_failed", len(pending))
        log.error("horizon.worker :: worker %d stopped with %d datapoints Redis never took", index, len(pending))
    link.close()
    log.info("horizon.worker :: worker %d stopped", index)


def _pause(seconds: float, stop: Any, parent_pid: int) -> None:
    """Wait out a Redis back-off, but not past a stop or the agent's death."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and os.getppid() == parent_pid and (left := deadline - time.monotonic()) > 0:
        stop.wait(min(0.5, left))
