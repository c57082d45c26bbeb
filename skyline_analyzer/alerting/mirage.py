"""The Mirage hand-off: the ``mirage.unique_metrics`` set (run step 5) and, per anomaly, the
``mirage.metrics.<base>`` key and the check file (run step 16). docs/alerts.md, "The Mirage hand-off".

Departure from v1.2.8: a name that cannot be written into the check file's double-quoted values as it is
(one holding ``"``, ``\\`` or a non-printable character) is refused: it is left out of
``mirage.unique_metrics``, no check file or key is written for it, and the Analyzer alerts on it itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from skyline_analyzer import excerpt, keys
from skyline_analyzer.alerting import redis_state
from skyline_analyzer.alerting.rules import AlertRule, alert_rules
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

log = logging.getLogger(__name__)

#: Seconds ``analyzer.manage_mirage_unique_metrics`` throttles the Mirage set rebuild.
MIRAGE_MANAGE_PERIOD = 300


def filesafe(name: str) -> str:
    """Only alphanumerics and ``.``, ``_``, ``-`` kept, trailing whitespace stripped."""
    return "".join(c for c in name if c.isalnum() or c in "._-").rstrip()


def fit_for_check_file(base_name: str) -> bool:
    """The name can stand between double quotes in the check file without changing its meaning."""
    return base_name.isprintable() and '"' not in base_name and "\\" not in base_name


def mirage_check_text(anomaly: Anomaly, hours_to_resolve: int) -> str:
    """The Mirage check file content: four double-quoted Python assignments.

    Raises ValueError for a name that is not :func:`fit_for_check_file`: it could forge the file's content.
    """
    if not fit_for_check_file(anomaly.base_name):
        raise ValueError(f"the metric name {excerpt.describe(anomaly.base_name)} cannot be written in a check file")
    return (
        f'metric = "{anomaly.base_name}"\n'
        f'value = "{anomaly.value}"\n'
        f'hours_to_resolve = "{hours_to_resolve}"\n'
        f'metric_timestamp = "{anomaly.timestamp}"\n'
    )


def write_mirage_check(settings: Settings, anomaly: Anomaly, hours_to_resolve: int) -> Path:
    """Write ``MIRAGE_CHECK_PATH/<int ts>.<filesafe base>.txt``, mode 0644; the directory must exist."""
    text = mirage_check_text(anomaly, hours_to_resolve)
    path = Path(settings.MIRAGE_CHECK_PATH) / f"{int(anomaly.timestamp)}.{filesafe(anomaly.base_name)}.txt"
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def hand_to_mirage(redis: Any, settings: Settings, rule: AlertRule, anomaly: Anomaly) -> None:
    """SETEX ``mirage.metrics.<base>`` for the rule's EXPIRATION_TIME and write the check file.

    The caller has checked :func:`fit_for_check_file`. Errors are logged; nothing raises.
    """
    name = excerpt.escape(anomaly.base_name)
    try:
        redis.set(keys.mirage_metric(anomaly.base_name), redis_state.packed(anomaly.value), ex=rule.expiration)
    except Exception:
        log.exception("error :: alerts - failed to set the Mirage key of %s", name)
    try:
        write_mirage_check(settings, anomaly, rule.second_order_resolution_hours)
    except (OSError, ValueError):
        log.exception("error :: alerts - failed to write the Mirage check file for %s", name)
        return
    log.info("added mirage check :: %s,%s,%s", name, anomaly.value, rule.second_order_resolution_hours)


def mirage_metric_keys(settings: Settings, unique_metrics: Iterable[str]) -> set[str]:
    """Full keys whose base name a Mirage rule matches (no exact-equality pre-check).

    Names not :func:`fit_for_check_file` are left out and counted in one log line.
    """
    mirage_rules = [rule for rule in alert_rules(settings) if rule.is_mirage]
    found = set()
    refused = []
    for full_key in unique_metrics:
        base = keys.base_name(settings.FULL_NAMESPACE, full_key)
        if not any(rule.match(base, exact=False) for rule in mirage_rules):
            continue
        if fit_for_check_file(base):
            found.add(full_key)
        else:
            refused.append(base)
    if refused:
        log.error("error :: alerts - %d metrics matched by a Mirage rule have names a check file cannot hold"
                  " (\", \\ or non-printable) and stay with the Analyzer, e.g. %s", len(refused),
                  excerpt.describe(refused[0]))
    return found


def manage_mirage_metrics(redis: Any, settings: Settings, unique_metrics: list[str], now: float) -> set[str]:
    """Run step 5: rebuild ``mirage.unique_metrics`` at most every 300 s; the Mirage full keys.

    With ENABLE_MIRAGE off this touches nothing and returns an empty set. Otherwise, when the throttle key
    ``analyzer.manage_mirage_unique_metrics`` is absent, the set is deleted and rebuilt from the metrics a
    Mirage rule matches, and the throttle key is set (only when there is at least one such metric, as in
    v1.2.8). The analyzer.* exception sets are the daemon's to refresh, not this function's.
    """
    if not settings.ENABLE_MIRAGE:
        return set()
    try:
        current = redis_state.members(redis, keys.MIRAGE_UNIQUE_METRICS)
        if redis.exists(keys.MANAGE_MIRAGE_UNIQUE_METRICS):
            return current
        wanted = mirage_metric_keys(settings, unique_metrics)
        pipe = redis.pipeline()
        pipe.delete(keys.MIRAGE_UNIQUE_METRICS)
        if wanted:
            pipe.sadd(keys.MIRAGE_UNIQUE_METRICS, *sorted(wanted))
            pipe.set(keys.MANAGE_MIRAGE_UNIQUE_METRICS, int(now), ex=MIRAGE_MANAGE_PERIOD)
        pipe.execute()
        log.info("mirage.unique_metrics rebuilt with %d metrics", len(wanted))
        return wanted
    except Exception:
        log.exception("error :: alerts - failed to manage mirage.unique_metrics")
        return set()
