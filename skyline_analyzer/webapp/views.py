"""The data behind each page and API call, as plain JSON-ready dicts (the pages render the same dicts).

The formats are documented in docs/webapp.md.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException

from skyline_analyzer.config import Settings
from skyline_analyzer.detection.explain import explain
from skyline_analyzer.detection.series import Series
from skyline_analyzer.webapp.sparkline import downsample
from skyline_analyzer.webapp.store import NotFound, Store, Unreadable

#: The settings that decide a verdict, shown beside an explanation.
VERDICT_SETTINGS = ("ALGORITHMS", "CONSENSUS", "FULL_DURATION", "STALE_PERIOD", "MIN_TOLERABLE_LENGTH",
                    "MAX_TOLERABLE_BOREDOM", "BOREDOM_SET_SIZE", "ANALYZER_ENGINE")


def anomalies(store: Store, limit: int | None = None) -> dict[str, Any]:
    """The last run's anomalies, newest first, and the Analyzer's health."""
    state = store.run_state()
    listed = state.anomalies if limit is None else state.anomalies[:limit]
    return {
        "anomalies": [dataclasses.asdict(a) | {"triggered": list(a.triggered)} for a in listed],
        "total": len(state.anomalies),
        "rejected_records": state.rejected,
        "health": health(store, state.report, state.dump_time, state.problems),
    }


def health(store: Store, report: dict[str, Any] | None, dump_time: float | None, problems: list[str]) -> dict:
    now = time.time()
    beat = store.heartbeat()
    return {
        "now": now,
        "heartbeat": beat,
        "heartbeat_age": None if beat is None else round(now - beat, 1),
        "dump_written": dump_time,
        "last_run": report,
        "problems": problems,
    }


def metrics(store: Store, prefix: str, limit: int) -> dict[str, Any]:
    names, truncated = store.index.search(prefix, limit)
    return {"prefix": prefix, "metrics": names, "truncated": truncated}


def load_series(store: Store, metric: str) -> Series:
    """The metric's series, or the 404 / 422 the API and the pages answer."""
    try:
        return store.series(metric)
    except NotFound:
        raise HTTPException(404, "no such metric in unique_metrics") from None
    except Unreadable as exc:
        raise HTTPException(422, f"the series cannot be read: {exc}") from None


def series(store: Store, metric: str, points: int | None) -> dict[str, Any]:
    """The series, reduced to at most ``points`` points (min and max of equal slices) when asked."""
    one = load_series(store, metric)
    ts, vs = one.timestamps, one.values
    if points is not None:
        ts, vs = downsample(ts, vs, max(1, points // 2))
    # Whole-second timestamps travel as integers: a third less JSON for the chart.
    stamps = ts.astype(np.int64).tolist() if np.array_equal(ts, np.floor(ts)) else ts.tolist()
    return {"metric": metric, "length": len(one), "timestamps": stamps, "values": vs.tolist()}


def explanation(store: Store, settings: Settings, metric: str, now: float | None) -> dict[str, Any]:
    """Every algorithm's vote on the metric's last datapoint, with its statistic and threshold."""
    one = load_series(store, metric)
    now = time.time() if now is None else now
    found = explain(one, settings, now)
    return {
        "metric": metric,
        "now": now,
        "length": len(one),
        "datapoint": {"timestamp": one.last_timestamp, "value": one.last_value},
        "anomalous": found.anomalous,
        "exception": found.exception,
        "false_votes": found.false_votes,
        "consensus": found.consensus,
        "algorithms": [dataclasses.asdict(r) for r in found.reasons],
        "settings": {name: settings[name] for name in VERDICT_SETTINGS},
    }
