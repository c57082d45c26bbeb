"""The Redis side of a verdict: stale-digest candidates and the second-order trigger history.

Detection is pure (:mod:`skyline_analyzer.detection`); what a verdict reads from or leaves in Redis is here,
called by the worker around :func:`skyline_analyzer.detection.engine.analyse`:

* every series whose age is in ``[ALERT_ON_STALE_PERIOD, STALE_PERIOD)`` is added to the stale-digest set,
  whatever its verdict (docs/analyzer.md);
* with ``ENABLE_SECOND_ORDER``, a series that reached consensus is anomalous only if its trigger history
  says so (docs/algorithms.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgpack

from skyline_analyzer import keys
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.algorithms import SECOND_ORDER_REPEAT_WINDOW, interval_is_anomalous
from skyline_analyzer.detection.engine import Outcome
from skyline_analyzer.detection.reference import Verdict
from skyline_analyzer.detection.series import Number, Series

log = logging.getLogger(__name__)


def record_stale_candidates(redis: Any, settings: Settings, series: Sequence[Series], names: Sequence[str],
                            now: float) -> None:
    """SADD each full key whose age is in [ALERT_ON_STALE_PERIOD, STALE_PERIOD) to the stale-digest set."""
    if not settings.ALERT_ON_STALE_METRICS:
        return
    # Settings read once: this loop sees every series of the run.
    alert_period, stale_period, whole_now = settings.ALERT_ON_STALE_PERIOD, settings.STALE_PERIOD, int(now)
    for one, name in zip(series, names, strict=True):
        if one.last_timestamp is None:
            continue
        if alert_period <= whole_now - int(one.last_timestamp) < stale_period:
            try:
                redis.sadd(keys.ALERT_ON_STALE_METRICS, name)
            except Exception:
                # The original ignored this failure too: the digest is best effort, the verdict is not.
                log.warning("could not add %s to %s", name, keys.ALERT_ON_STALE_METRICS, exc_info=True)


def is_anomalously_anomalous(redis: Any, metric_name: str, datapoint: Number, now: float) -> bool:
    """Second-order check on the metric's ``trigger_history.<full key>``.

    First trigger: store ``[(now, datapoint)]`` and return True. The same datapoint again within 300 s:
    False, history untouched. The run's own entry (same ``now``, same datapoint: the check ran again in this
    run) gives the first pass's answer, history untouched. Otherwise append ``[now, datapoint]`` (the history
    never expires, as in v1.2.8) and test the latest interval between triggers
    (:func:`skyline_analyzer.detection.algorithms.interval_is_anomalous`).
    """
    key = keys.trigger_history(metric_name)
    raw = redis.get(key)
    if raw is None:
        redis.set(key, msgpack.packb([(now, datapoint)]))
        return True
    history = msgpack.unpackb(raw)
    last_time, last_datapoint = history[-1]
    if last_time == now and datapoint == last_datapoint:
        # This run's own entry: the check is running again (Dask re-ran the unit, docs/scale-out.md). Decide
        # as the first pass did, which wrote it, and write nothing: one entry per run whatever re-runs.
        return len(history) == 1 or interval_is_anomalous([entry[0] for entry in history])
    if datapoint == last_datapoint and now - last_time <= SECOND_ORDER_REPEAT_WINDOW:
        return False
    history.append([now, datapoint])
    redis.set(key, msgpack.packb(history))
    return interval_is_anomalous([entry[0] for entry in history])


def second_order(redis: Any, verdict: Verdict, metric_name: str, now: float) -> Verdict:
    """The verdict after the second-order check (a consensus that the history does not confirm is False)."""
    if not verdict.anomalous:
        return verdict
    try:
        anomalous = is_anomalously_anomalous(redis, metric_name, verdict.datapoint, now)
    except Exception:
        # v1.2.8's catch-all around the final block: log and return (False, [], 1).
        log.error("error :: Algorithm error: second-order check failed for %s", metric_name, exc_info=True)
        return Verdict(False, [], 1)
    return Verdict(anomalous, verdict.ensemble, verdict.datapoint)


def apply_second_order(redis: Any, settings: Settings, outcomes: list[Outcome], now: float) -> list[Outcome]:
    """``outcomes`` with every consensus put through :func:`second_order` when ``ENABLE_SECOND_ORDER``."""
    if not settings.ENABLE_SECOND_ORDER:
        return outcomes
    return [
        Outcome(o.name, verdict=second_order(redis, o.verdict, o.name, now)) if o.verdict is not None else o
        for o in outcomes
    ]
