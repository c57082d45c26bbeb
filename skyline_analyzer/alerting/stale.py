"""Run step 19: one digest of the metrics that newly went stale (docs/alerts.md, "The stale digest").

Departure from v1.2.8 (L1, FIX): sending the digest cannot stop the caller; every error is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from skyline_analyzer import keys
from skyline_analyzer.alerting import redis_state
from skyline_analyzer.alerting.alerters import STALE_DIGEST
from skyline_analyzer.alerting.alerters.stale_digest import StaleMetrics
from skyline_analyzer.alerting.dispatch import ANALYZER_CONTEXT, AlertJob, dispatch
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.matching import in_list
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)


def new_stale_metrics(redis: Any, settings: Settings) -> list[str]:
    """Base names in ``analyzer.alert_on_stale_metrics`` to report, sorted.

    Members (full keys) that match DO_NOT_ALERT_ON_STALE_METRICS are dropped, and so are those with a live
    ``last_alert.stale.<base>``.
    """
    new = []
    for full_key in sorted(redis_state.members(redis, keys.ALERT_ON_STALE_METRICS)):
        if in_list(full_key, settings.DO_NOT_ALERT_ON_STALE_METRICS):
            continue
        base = keys.base_name(settings.FULL_NAMESPACE, full_key)
        if redis_state.exists(redis, keys.last_alert("stale", base)) is not False:
            continue
        new.append(base)
    return new


def send_stale_digest(redis: Any, settings: Settings, now: float, watchdog: Notifier | None = None) -> None:
    """Mail the digest of :func:`new_stale_metrics`, if any, within ALERT_TIMEOUT.

    Once it has been delivered, ``last_alert.stale.<base>`` is set for each reported metric with
    STALE_PERIOD as its TTL. ``watchdog`` is pinged while the mail is in flight. Nothing raises.
    """
    try:
        new = new_stale_metrics(redis, settings)
        if not new:
            return
        period = int(settings.STALE_PERIOD)
        stamp = redis_state.packed(int(now))
        job = AlertJob(
            AlertRule("stale_metrics", STALE_DIGEST.name, period),
            StaleMetrics(tuple(new), int(now)),
            ANALYZER_CONTEXT,
            tuple((keys.last_alert("stale", base), period, stamp) for base in new),
            STALE_DIGEST,
        )
        log.info("alerting on %d stale metrics", len(new))
        dispatch([job], settings, redis, watchdog)
    except Exception:
        log.exception("error :: alerts - the stale digest failed")
