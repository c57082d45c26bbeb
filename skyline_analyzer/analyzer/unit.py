"""One Dask work unit, run on a Dask worker: fetch, decode and analyse its keys as a forked worker would.

The unit's keys are read in chunks of ``MGET_CHUNK`` and analysed by
:func:`skyline_analyzer.analyzer.worker.process_chunk`, the forked worker's own chunk step, so verdicts,
exception counts and the Redis side of the verdicts are the same. What a forked worker writes to
``SKYLINE_TMP_DIR`` (timings, algorithm errors) comes back in the :class:`UnitDone` instead, because the
unit may run on another machine and may run twice (docs/scale-out.md#exactly-once).

The Redis client is kept per Dask worker process between units and runs; it is dropped after a Redis
error, so the next unit connects afresh (and a cluster client reloads the slot map).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from skyline_analyzer import connections
from skyline_analyzer.analyzer.messages import UnitDone, WorkerSummary
from skyline_analyzer.analyzer.run_metrics import CollectingRecorder
from skyline_analyzer.analyzer.units import WorkUnit
from skyline_analyzer.analyzer.worker import MGET_CHUNK, ExceptionSetWriter, fetch_chunk, process_chunk
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

log = logging.getLogger(__name__)

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(settings: Settings) -> Any:
    where = connections.describe(settings)
    with _clients_lock:
        if where not in _clients:
            _clients[where] = connections.connect(settings)
        return _clients[where]


def _forget(settings: Settings) -> None:
    with _clients_lock:
        conn = _clients.pop(connections.describe(settings), None)
    if conn is not None:
        try:
            conn.close()
        except (redis.RedisError, OSError):
            log.debug("closing a failed Redis client failed", exc_info=True)


def analyse_unit(unit: WorkUnit, settings: Settings, now: float) -> UnitDone:
    """Analyse ``unit`` at time ``now``; a Redis failure stops it early (the rest counts as unprocessed)."""
    started = time.monotonic()
    summary = WorkerSummary()
    recorder = CollectingRecorder()
    anomalies: list[Anomaly] = []
    sets = ExceptionSetWriter()
    conn = _client(settings)
    for lo in range(0, len(unit.names), MGET_CHUNK):
        chunk = unit.names[lo : lo + MGET_CHUNK]
        try:
            names, raw_values = fetch_chunk(conn, chunk)
            anomalies.extend(process_chunk(conn, names, raw_values, settings, now, recorder, summary, sets))
        except (redis.RedisError, OSError) as exc:
            log.error("error :: unit %d failed to fetch %d metrics from Redis: %s", unit.unit_id, len(chunk), exc)
            _forget(settings)
            break
    sets.flush(_client(settings), summary, done=True)
    summary.elapsed = time.monotonic() - started
    where = f"{socket.gethostname()}:{os.getpid()}"
    return UnitDone(unit.unit_id, summary, anomalies, recorder.timings, recorder.errors, where)
