"""Alerting: ALERTS matching, rate limiting, dispatch, the stale digest and the Mirage hand-off.

docs/alerts.md: run steps 16 and 19, and the Mirage hand-off of step 5 (``mirage.unique_metrics`` and the
Mirage check file). Alerters live in :mod:`skyline_analyzer.alerting.alerters`, one module each.

Decisions where this module departs from v1.2.8 (docs/departures.md#alerting):

* **Rate-limit key after the send.** ``last_alert.<alerter>.<base>`` is SETEX'd only once the alerter
  returned without error, so a receiver that was down or slow is tried again on the next run. v1.2.8 set
  it before sending, so a failed alert was lost until the key expired.
* **Bounded time.** Alerts of one call run concurrently in threads (``ALERT_CONCURRENCY``); every network
  alerter uses ``ALERT_TIMEOUT`` as its socket timeout, and the call waits at most ``ALERT_TIMEOUT`` per
  wave of ``ALERT_CONCURRENCY`` alerts (plus a second of grace). Alerts not started by then are skipped,
  logged and, their key being unset, retried next run.
* **L4 (FIX):** a Mirage tuple with ``ENABLE_FULL_DURATION_ALERTS`` alerts only when its
  ``last_alert`` key is absent, like every other tuple.
* **L5 (FIX):** when several Mirage tuples match a metric, the first one in ALERTS order writes the
  check file and sets ``mirage.metrics.<base>``; later ones are ignored (first match wins, as the docs say).
* **L1 (FIX):** sending the stale digest cannot stop the caller; every error is logged.
* Ionosphere is out of scope: no Ionosphere keys are read and no Ionosphere context is produced.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack

from skyline_analyzer import keys
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.matching import in_list

log = logging.getLogger(__name__)

#: Contexts passed to alerters (the app on whose behalf the alert is sent).
ANALYZER_CONTEXT = "Analyzer"
MIRAGE_CONTEXT = "Mirage"
#: The alert tuple the stale digest is sent through (docs/alerts.md#the-stale-digest); its expiry is STALE_PERIOD.
STALE_DIGEST_ALERTER = "stale_digest"
#: Seconds added to the dispatch deadline for thread start-up and bookkeeping.
DISPATCH_GRACE = 1.0
#: Seconds ``analyzer.manage_mirage_unique_metrics`` throttles the Mirage set (docs/redis-keys.md#mirage-hand-off).
MIRAGE_MANAGE_PERIOD = 300

_ALERTER_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class StaleMetrics:
    """What the stale digest reports: the base names that went stale and when the digest was made."""

    base_names: tuple[str, ...]
    timestamp: int


@dataclass(frozen=True)
class AlertJob:
    """One alert to deliver, and the rate-limit key to set once it has been delivered."""

    alert: tuple
    target: Anomaly | StaleMetrics
    context: str
    # (key, ttl, value) pairs SETEX'd after a successful send.
    on_success: tuple[tuple[str, int, bytes], ...] = ()


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def match_rule(pattern: str, base_name: str, *, exact: bool = True) -> str | None:
    """How an ALERTS pattern matches a base name: ``'exact'``, ``'regex'``, ``'substring'`` or None.

    The rules are tried in that order (docs/alerts.md#matching): string equality (skipped when ``exact`` is False,
    as the Mirage set rebuild does), ``re.match`` (anchored at the start only; a pattern that does not
    compile skips this rule), then ``pattern in base_name``.
    """
    if exact and pattern == base_name:
        return "exact"
    compiled = _compiled(pattern)
    if compiled is not None and compiled.match(base_name):
        return "regex"
    if pattern in base_name:
        return "substring"
    return None


def filesafe(name: str) -> str:
    """Keep alphanumerics and ``.``, ``_``, ``-``; strip trailing whitespace (docs/formats.md#mirage-check-file)."""
    return "".join(c for c in name if c.isalnum() or c in "._-").rstrip()


def alerter_module(alerter: str) -> ModuleType:
    """The module implementing an ALERTS alerter name; an e-mail address (legacy) is the smtp alerter.

    Raises :class:`LookupError` for a name that is not an alerter module with an ``alert`` function.
    """
    name = "smtp" if "@" in alerter else alerter
    if not _ALERTER_NAME.match(name):
        raise LookupError(f"{alerter!r} is not an alerter name")
    try:
        module = importlib.import_module(f"skyline_analyzer.alerting.alerters.{name}")
    except ModuleNotFoundError:
        raise LookupError(f"no alerter named {alerter!r}") from None
    if not callable(getattr(module, "alert", None)):
        raise LookupError(f"skyline_analyzer.alerting.alerters.{name} has no alert function")
    return module


def trigger_alert(
    alert: Sequence[Any], target: Anomaly | StaleMetrics, context: str, settings: Settings, redis: Any
) -> bool:
    """Call the tuple's alerter; True when it returned, False (logged) when it failed or is unknown."""
    try:
        alerter_module(alert[1]).alert(tuple(alert), target, context, settings, redis)
    except Exception:
        log.exception("error :: alerters - %s - failed to alert on %s", alert[1], _describe(target))
        return False
    return True


def _describe(target: Anomaly | StaleMetrics) -> str:
    if isinstance(target, StaleMetrics):
        return f"{len(target.base_names)} stale metrics"
    return f"{target.base_name} {target.value}"


def _deliver(job: AlertJob, settings: Settings, redis: Any) -> bool:
    if not trigger_alert(job.alert, job.target, job.context, settings, redis):
        return False
    for key, ttl, value in job.on_success:
        try:
            redis.set(key, value, ex=ttl)
        except Exception:
            log.exception("error :: alerts - failed to set %s after alerting", key)
    return True


def dispatch(jobs: Sequence[AlertJob], settings: Settings, redis: Any) -> list[bool | None]:
    """Deliver the jobs concurrently within a bounded time; per job True (sent), False (failed) or None.

    None means the job was still running, or had not started, when the deadline passed. A running job's
    thread is a daemon thread: it finishes within its own socket timeouts and then sets its key.
    """
    if not jobs:
        return []
    timeout = float(settings.ALERT_TIMEOUT)
    workers = max(1, min(len(jobs), int(settings.ALERT_CONCURRENCY)))
    deadline = time.monotonic() + timeout * math.ceil(len(jobs) / workers) + DISPATCH_GRACE
    results: list[bool | None] = [None] * len(jobs)
    pending = iter(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None or time.monotonic() >= deadline:
                return
            results[index] = _deliver(jobs[index], settings, redis)

    threads = [threading.Thread(target=work, name=f"alert-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    # A snapshot: an abandoned thread may still record its result later.
    outcome = list(results)
    unfinished = outcome.count(None)
    if unfinished:
        log.error("error :: alerts - %d of %d alerts did not complete within the time limit", unfinished, len(jobs))
    return outcome


def _packed(value: Any) -> bytes:
    # A numpy scalar (from a caller that computed the value) packs as the Python number it holds.
    return msgpack.packb(value.item() if hasattr(value, "item") else value)


def _exists(redis: Any, key: str) -> bool | None:
    """EXISTS, or None (logged) when Redis failed: callers skip the metric then, as v1.2.8 did."""
    try:
        return bool(redis.exists(key))
    except Exception:
        log.exception("error :: alerts - failed to check %s", key)
        return None


def _smembers(redis: Any, key: str) -> set[str]:
    try:
        return {m.decode() if isinstance(m, bytes) else m for m in redis.smembers(key)}
    except Exception:
        log.exception("error :: alerts - failed to read %s", key)
        return set()


def mirage_check_text(anomaly: Anomaly, hours_to_resolve: int) -> str:
    """The Mirage check file content (docs/formats.md#mirage-check-file): four double-quoted Python assignments."""
    return (
        f'metric = "{anomaly.base_name}"\n'
        f'value = "{anomaly.value}"\n'
        f'hours_to_resolve = "{hours_to_resolve}"\n'
        f'metric_timestamp = "{anomaly.timestamp}"\n'
    )


def write_mirage_check(settings: Settings, anomaly: Anomaly, hours_to_resolve: int) -> Path:
    """Write ``MIRAGE_CHECK_PATH/<int ts>.<filesafe base>.txt``, mode 0644; the directory must exist."""
    path = Path(settings.MIRAGE_CHECK_PATH) / f"{int(anomaly.timestamp)}.{filesafe(anomaly.base_name)}.txt"
    path.write_text(mirage_check_text(anomaly, hours_to_resolve))
    os.chmod(path, 0o644)
    return path


def _hand_to_mirage(redis: Any, settings: Settings, alert: Sequence[Any], anomaly: Anomaly) -> None:
    try:
        redis.set(keys.mirage_metric(anomaly.base_name), _packed(anomaly.value), ex=alert[2])
    except Exception:
        log.exception("error :: alerts - failed to set %s", keys.mirage_metric(anomaly.base_name))
    try:
        write_mirage_check(settings, anomaly, alert[3])
    except OSError:
        log.exception("error :: alerts - failed to write the Mirage check file for %s", anomaly.base_name)
        return
    log.info("added mirage check :: %s,%s,%s", anomaly.base_name, anomaly.value, alert[3])


def plan_alerts(redis: Any, settings: Settings, anomalies: Iterable[Anomaly]) -> tuple[list[AlertJob], set[str]]:
    """Run step 16's matching and rate limiting (docs/alerts.md#rate-limit); hand Mirage metrics over.

    Returns the jobs to send and the base names handed to Mirage. Tuples are the outer loop and anomalies
    the inner one. Per (alerter, metric) only the first matching tuple yields a job, and only when
    ``last_alert.<alerter>.<base>`` does not exist.
    """
    anomalies = list(anomalies)
    mirage_enabled = bool(settings.ENABLE_MIRAGE)
    mirage_metrics = _smembers(redis, keys.MIRAGE_UNIQUE_METRICS) if mirage_enabled else set()
    handed_to_mirage: set[str] = set()
    claimed: set[tuple[str, str]] = set()
    jobs = []
    for alert in settings.ALERTS:
        pattern, alerter, expiry = alert[0], alert[1], alert[2]
        for anomaly in anomalies:
            base = anomaly.base_name
            rule = match_rule(pattern, base)
            if rule is None:
                continue
            context = ANALYZER_CONTEXT
            if mirage_enabled and len(alert) > 3:
                if base not in handed_to_mirage:
                    handed_to_mirage.add(base)
                    _hand_to_mirage(redis, settings, alert, anomaly)
                if not settings.ENABLE_FULL_DURATION_ALERTS:
                    continue
                context = MIRAGE_CONTEXT
            else:
                if keys.metric(settings.FULL_NAMESPACE, base) in mirage_metrics:
                    continue
                if mirage_enabled and _exists(redis, keys.mirage_metric(base)) is not False:
                    continue
            if (alerter, base) in claimed:
                continue
            cache_key = keys.last_alert(alerter, base)
            if _exists(redis, cache_key) is not False:
                continue
            claimed.add((alerter, base))
            log.info("triggering alert :: %s %s via %s - matched by %s", base, anomaly.value, alerter, rule)
            jobs.append(AlertJob(tuple(alert), anomaly, context, ((cache_key, expiry, _packed(anomaly.value)),)))
    return jobs, handed_to_mirage


def send_alerts(redis: Any, settings: Settings, anomalies: list[Anomaly], now: float) -> int:
    """Run step 16 in full: match, rate-limit, hand Mirage metrics over and send, within bounded time.

    Returns how many metrics were handed to Mirage (the run's ``sent_to_mirage``). ``now`` is the run's
    start time, used for logging. Every error is logged; nothing raises to the caller.
    """
    try:
        jobs, handed_to_mirage = plan_alerts(redis, settings, anomalies)
        results = dispatch(jobs, settings, redis)
    except Exception:
        log.exception("error :: alerts - alerting failed in the run started at %s", int(now))
        return 0
    if jobs:
        log.info("alerts :: %d sent, %d failed, %d timed out", results.count(True), results.count(False),
                 results.count(None))
    return len(handed_to_mirage)


def send_stale_digest(redis: Any, settings: Settings, now: float) -> None:
    """Run step 19 (docs/alerts.md#the-stale-digest): one digest mail of the metrics that newly went stale.

    Members of ``analyzer.alert_on_stale_metrics`` (full keys) that match DO_NOT_ALERT_ON_STALE_METRICS
    are dropped, and so are those with a live ``last_alert.stale.<base>``. After the digest was sent, that
    key is set for each reported metric with STALE_PERIOD as its TTL. Nothing raises to the caller (L1).
    """
    try:
        new = []
        for full_key in sorted(_smembers(redis, keys.ALERT_ON_STALE_METRICS)):
            if in_list(full_key, settings.DO_NOT_ALERT_ON_STALE_METRICS):
                continue
            base = keys.base_name(settings.FULL_NAMESPACE, full_key)
            if _exists(redis, keys.last_alert("stale", base)) is not False:
                continue
            new.append(base)
        if not new:
            return
        period = int(settings.STALE_PERIOD)
        stamp = _packed(int(now))
        job = AlertJob(
            ("stale_metrics", STALE_DIGEST_ALERTER, period),
            StaleMetrics(tuple(new), int(now)),
            ANALYZER_CONTEXT,
            tuple((keys.last_alert("stale", base), period, stamp) for base in new),
        )
        log.info("alerting on %d stale metrics", len(new))
        dispatch([job], settings, redis)
    except Exception:
        log.exception("error :: alerts - the stale digest failed")


def mirage_metric_keys(settings: Settings, unique_metrics: Iterable[str]) -> set[str]:
    """Full keys whose base name a 4-element ALERTS tuple matches (no exact-equality pre-check)."""
    mirage_tuples = [alert for alert in settings.ALERTS if len(alert) > 3]
    found = set()
    for full_key in unique_metrics:
        base = keys.base_name(settings.FULL_NAMESPACE, full_key)
        if any(match_rule(alert[0], base, exact=False) for alert in mirage_tuples):
            found.add(full_key)
    return found


def manage_mirage_metrics(redis: Any, settings: Settings, unique_metrics: list[str], now: float) -> set[str]:
    """Run step 5: rebuild ``mirage.unique_metrics`` at most every 300 s; the Mirage full keys.

    With ENABLE_MIRAGE off this touches nothing and returns an empty set. Otherwise, when the throttle key
    ``analyzer.manage_mirage_unique_metrics`` is absent, the set is deleted and rebuilt from the metrics a
    4-element tuple matches, and the throttle key is set (only when there is at least one such metric, as
    in v1.2.8). The analyzer.* exception sets are the daemon's to refresh, not this function's.
    """
    if not settings.ENABLE_MIRAGE:
        return set()
    try:
        current = _smembers(redis, keys.MIRAGE_UNIQUE_METRICS)
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
