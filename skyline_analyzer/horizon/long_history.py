"""The second stage's longer history: each series downsampled into ``second_stage.<full key>``.

With ``SECOND_STAGE_ENABLED``, a thread of the Horizon agent makes a pass every
``SECOND_STAGE_RESOLUTION`` seconds over ``<FULL_NAMESPACE>unique_metrics``: it reads each series and its
longer copy (MGET, ``CHUNK`` keys at a time), averages the series' complete buckets of
``SECOND_STAGE_RESOLUTION`` seconds newer than the copy's last bucket
(:func:`skyline_analyzer.detection.second_stage.downsample`) and APPENDs them in the series format. When
the copy's oldest bucket has left ``SECOND_STAGE_DURATION`` the copy is rewritten without the old part.
Every write sets the key's TTL to ``SECOND_STAGE_DURATION``, so the copy of a series that stops
vanishes on its own; Roomba does not touch these keys (docs/second-stage.md#the-longer-history).

This keeper is the copies' only writer, so a read-modify-write needs no lock. A series or a copy that
does not decode is counted and logged (bounded); a copy that does not decode is deleted and rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from skyline_analyzer import codec, keys
from skyline_analyzer.config import Settings
from skyline_analyzer.connections import RedisLink
from skyline_analyzer.detection.second_stage import downsample
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)

#: Series read per MGET (with their copies): bounds the keeper's memory.
CHUNK = 500


@dataclass
class PassResult:
    """What one pass did: series seen, copies extended, rewritten (trimmed), and values not decoded."""

    series: int = 0
    extended: int = 0
    rewritten: int = 0
    buckets: int = 0
    undecodable: int = 0


def _pairs(starts: np.ndarray, means: np.ndarray) -> list[tuple[int, float]]:
    return [(int(t), float(v)) for t, v in zip(starts, means, strict=True)]


def keep_one(pipe: Any, name: str, raw: bytes | None, raw_copy: bytes | None, now: float, settings: Settings,
             result: PassResult) -> None:
    """Queue on ``pipe`` the write that brings the copy of series ``name`` up to date (maybe none)."""
    if raw is None:
        return
    copy_key = keys.second_stage_history(name)
    try:
        series = codec.decode_fast(raw, name)
    except SeriesFormatError as exc:
        result.undecodable += 1
        log.info("horizon.long_history :: %s not downsampled: %s", escape(name), escape(str(exc)))
        return
    old_t, old_v = np.empty(0), np.empty(0)
    if raw_copy:
        try:
            copy = codec.decode_fast(raw_copy, copy_key)
            old_t, old_v = copy.timestamps, copy.values
        except SeriesFormatError as exc:
            result.undecodable += 1
            log.info("horizon.long_history :: rebuilding %s: %s", escape(copy_key), escape(str(exc)))
            raw_copy = None
    after = float(old_t[-1]) if old_t.shape[0] else -np.inf
    cutoff = now - settings.SECOND_STAGE_DURATION
    starts, means = downsample(series.timestamps, series.values, settings.SECOND_STAGE_RESOLUTION, after)
    starts, means = starts[starts >= cutoff], means[starts >= cutoff]
    stale = old_t.shape[0] > 0 and old_t[0] < cutoff
    if starts.shape[0] == 0 and not stale:
        return
    result.buckets += int(starts.shape[0])
    if stale or raw_copy is None:
        keep = old_t >= cutoff
        whole = _pairs(np.concatenate([old_t[keep], starts]), np.concatenate([old_v[keep], means]))
        pipe.set(copy_key, codec.encode(whole), ex=int(settings.SECOND_STAGE_DURATION))
        result.rewritten += 1
        return
    pipe.append(copy_key, codec.encode(_pairs(starts, means)))
    pipe.expire(copy_key, int(settings.SECOND_STAGE_DURATION))
    result.extended += 1


def keep_pass(conn: redis.Redis, settings: Settings, now: float | None = None) -> PassResult:
    """One pass over every series of ``FULL_NAMESPACE``."""
    now = time.time() if now is None else now
    result = PassResult()
    names = sorted(m.decode("utf-8", "surrogateescape")
                   for m in conn.smembers(keys.unique_metrics(settings.FULL_NAMESPACE)))
    for lo in range(0, len(names), CHUNK):
        chunk = names[lo : lo + CHUNK]
        values = conn.mget([*chunk, *(keys.second_stage_history(n) for n in chunk)])
        pipe = conn.pipeline(transaction=False)
        for name, raw, raw_copy in zip(chunk, values[: len(chunk)], values[len(chunk) :], strict=True):
            result.series += 1
            keep_one(pipe, name, raw, raw_copy, now, settings, result)
        pipe.execute()
    return result


def run_keeper(settings: Settings, stop: threading.Event) -> None:
    """The keeper thread: a pass every ``SECOND_STAGE_RESOLUTION`` seconds until ``stop`` is set."""
    link = RedisLink(settings)
    interval = float(settings.SECOND_STAGE_RESOLUTION)
    while not stop.is_set():
        started = time.monotonic()
        if not link.ping():
            stop.wait(link.backoff())
            link.reconnect()
            continue
        try:
            result = keep_pass(link.conn, settings)
        except (redis.RedisError, OSError) as exc:
            log.error("horizon.long_history :: pass failed: %s", exc)
        else:
            log.info("horizon.long_history :: %d series in %.2fs: %d copies extended, %d rewritten, %d buckets, "
                     "%d values not decoded", result.series, time.monotonic() - started, result.extended,
                     result.rewritten, result.buckets, result.undecodable)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    link.close()
