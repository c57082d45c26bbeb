"""Everything the web app reads: metric names, series and the heartbeat from Redis, the run's files.

Read-only by construction: the only Redis commands here are SMEMBERS, SISMEMBER, STRLEN, GET and TTL.
Every value read is bounded before it is parsed (``WEBAPP_MAX_SERIES_BYTES``, ``WEBAPP_MAX_DUMP_BYTES``).
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from skyline_analyzer import keys
from skyline_analyzer.analyzer.outputs import anomaly_dump_path, run_report_path
from skyline_analyzer.codec import decode_fast
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.series import Series, is_number
from skyline_analyzer.exceptions import SeriesFormatError


class NotFound(Exception):
    """The metric is not in ``unique_metrics`` or its series is gone."""


class Unreadable(Exception):
    """The series exists but cannot be shown: too large, corrupt, or Redis failed."""


@dataclass(frozen=True)
class DumpAnomaly:
    """One anomaly of the last run: the dump's ``[value, base_name, timestamp]`` plus the triggering algorithms."""

    metric: str
    value: float | int
    timestamp: float | int
    triggered: tuple[str, ...] = ()


@dataclass
class RunState:
    """The last run as its files tell it: the anomalies (newest first) and the run report's figures."""

    anomalies: list[DumpAnomaly] = field(default_factory=list)
    rejected: int = 0
    dump_time: float | None = None
    report: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


class MetricIndex:
    """The sorted base names of ``unique_metrics``, read again at most every ``ttl`` seconds.

    A prefix search is two binary searches over the sorted list: fast at any number of names.
    """

    def __init__(self, conn: redis.Redis, namespace: str, ttl: float) -> None:
        self.conn, self.namespace, self.ttl = conn, namespace, ttl
        self._names: list[str] = []
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                members = self.conn.smembers(keys.unique_metrics(self.namespace))
                self._names = sorted(_base_names(members, self.namespace))
                self._read_at = time.monotonic()
            return self._names

    def search(self, prefix: str, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` names starting with ``prefix`` in order, and whether more matched."""
        names = self.names()
        start = bisect.bisect_left(names, prefix)
        found = []
        for name in names[start : start + limit + 1]:
            if not name.startswith(prefix):
                break
            found.append(name)
        return found[:limit], len(found) > limit


def _base_names(members: set[bytes], namespace: str) -> list[str]:
    """Base names of the members that are UTF-8 (no metric tool can read the others)."""
    names = []
    for member in members:
        try:
            names.append(keys.base_name(namespace, member.decode()))
        except UnicodeDecodeError:
            continue
    return names


class Store:
    """The web app's view of Redis and of the files the Analyzer writes."""

    def __init__(self, conn: redis.Redis, settings: Settings) -> None:
        self.conn = conn
        self.settings = settings
        self.namespace = settings.FULL_NAMESPACE
        self.index = MetricIndex(conn, self.namespace, settings.WEBAPP_METRICS_CACHE_SECONDS)

    def series(self, metric: str) -> Series:
        """The decoded series of a metric of ``unique_metrics``; NotFound or Unreadable otherwise."""
        full_key = keys.metric(self.namespace, metric)
        try:
            if not self.conn.sismember(keys.unique_metrics(self.namespace), full_key):
                raise NotFound(metric)
            size = self.conn.strlen(full_key)
            if size == 0:
                raise NotFound(metric)
            if size > self.settings.WEBAPP_MAX_SERIES_BYTES:
                raise Unreadable(f"the series is {size} bytes, more than WEBAPP_MAX_SERIES_BYTES")
            raw = self.conn.get(full_key)
        except redis.ResponseError as exc:
            raise Unreadable(f"Redis refused the read: {type(exc).__name__}") from exc
        if raw is None:
            raise NotFound(metric)
        try:
            return decode_fast(raw, "series")
        except SeriesFormatError as exc:
            raise Unreadable(str(exc)) from exc

    def heartbeat(self) -> float | None:
        """The time of the Analyzer's last heartbeat, or None when it has expired."""
        raw = self.conn.get(keys.ANALYZER_HEARTBEAT)
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def run_state(self) -> RunState:
        """The anomalies of the last run, newest first, joined with the run report's triggered algorithms."""
        state = RunState()
        dump = anomaly_dump_path(self.settings)
        text = self._read_bounded(dump, state)
        if text is not None:
            state.dump_time = dump.stat().st_mtime
            records = _parse_dump(text, state)
            report_text = self._read_bounded(run_report_path(self.settings), state)
            triggered = self._triggered(report_text, state)
            for record in records:
                anomaly = _anomaly(record)
                if anomaly is None:
                    state.rejected += 1
                    continue
                algorithms = triggered.get((anomaly.metric, anomaly.timestamp), ())
                state.anomalies.append(DumpAnomaly(anomaly.metric, anomaly.value, anomaly.timestamp, algorithms))
        state.anomalies.sort(key=lambda a: (-a.timestamp, a.metric))
        return state

    def _read_bounded(self, path: Path, state: RunState) -> str | None:
        try:
            with path.open("rb") as handle:
                data = handle.read(self.settings.WEBAPP_MAX_DUMP_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            state.problems.append(f"{path.name}: {type(exc).__name__}")
            return None
        if len(data) > self.settings.WEBAPP_MAX_DUMP_BYTES:
            state.problems.append(f"{path.name} is larger than WEBAPP_MAX_DUMP_BYTES")
            return None
        return data.decode("utf-8", errors="replace")

    def _triggered(self, text: str | None, state: RunState) -> dict[tuple[str, Any], tuple[str, ...]]:
        if text is None:
            return {}
        try:
            report = json.loads(text)
        except ValueError:
            state.problems.append("analyzer_run.json is not JSON")
            return {}
        if not isinstance(report, dict):
            state.problems.append("analyzer_run.json is not an object")
            return {}
        state.report = {k: v for k, v in report.items() if k != "anomalies"}
        found = {}
        for item in report.get("anomalies") or ():
            if isinstance(item, dict) and isinstance(item.get("triggered"), list):
                names = tuple(str(a) for a in item["triggered"] if isinstance(a, str))
                found[(item.get("metric"), item.get("timestamp"))] = names
        return found


def _parse_dump(text: str, state: RunState) -> list[Any]:
    """The dump's records; a JSONP dump (``handle_data(...)``) is unwrapped."""
    stripped = text.strip()
    if stripped.startswith("handle_data(") and stripped.endswith(")"):
        stripped = stripped[len("handle_data(") : -1]
    try:
        records = json.loads(stripped)
    except ValueError:
        state.problems.append("anomalies.json is not JSON")
        return []
    if not isinstance(records, list):
        state.problems.append("anomalies.json is not a list")
        return []
    return records


def _anomaly(record: Any) -> DumpAnomaly | None:
    # A fourth item is the second stage's decision (docs/second-stage.md); the page shows the first three.
    if not isinstance(record, list) or len(record) not in (3, 4):
        return None
    value, metric, timestamp = record[:3]
    if not isinstance(metric, str) or not is_number(value) or not is_number(timestamp):
        return None
    if not (math.isfinite(value) and math.isfinite(timestamp)):
        return None
    return DumpAnomaly(metric, value, timestamp)
