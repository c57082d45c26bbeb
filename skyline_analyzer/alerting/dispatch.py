"""Run step 16: which anomalies alert through which rule, the rate limit, and sending the alerts to the
alerters within a time budget while the systemd watchdog keeps being pinged. docs/alerts.md.

Decisions where this module departs from v1.2.8 (docs/alerts.md, "Departures from v1.2.8"):

* **Rate-limit key after the send.** ``last_alert.<alerter>.<base>`` is SETEX'd only once the alerter
  returned without error, so a receiver that was down or slow is tried again on the next run. v1.2.8 set
  it before sending, so a failed alert was lost until the key expired.
* **Bounded time.** Alerts of one call run concurrently in threads (``ALERT_CONCURRENCY``); every network
  alerter uses ``ALERT_TIMEOUT`` as its socket timeout; the call waits at most ``ALERT_TIMEOUT`` per wave
  of ``ALERT_CONCURRENCY`` alerts (plus a second of grace), and never more than
  ``ALERT_DISPATCH_TIMEOUT`` in all. Alerts not finished by then are logged and, their key being unset,
  retried next run. While it waits, the call pings the systemd watchdog.
* **L4 (FIX):** a Mirage rule with ``ENABLE_FULL_DURATION_ALERTS`` alerts only when its ``last_alert``
  key is absent, like every other rule.
* **L5 (FIX):** when several Mirage rules match a metric, the first one in ALERTS order writes the check
  file and sets ``mirage.metrics.<base>``; later ones are ignored (first match wins, as the docs say).
* Ionosphere is out of scope: no Ionosphere keys are read and no Ionosphere context is produced.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from skyline_analyzer import excerpt, keys
from skyline_analyzer.alerting import alerters, mirage, redis_state
from skyline_analyzer.alerting.alerters import Alerter
from skyline_analyzer.alerting.alerters.stale_digest import StaleMetrics
from skyline_analyzer.alerting.rules import AlertRule, alert_rules
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.exceptions import SettingsError
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

#: Contexts passed to alerters (the app on whose behalf the alert is sent).
ANALYZER_CONTEXT = "Analyzer"
MIRAGE_CONTEXT = "Mirage"
#: Seconds added to the per-wave deadline for thread start-up and bookkeeping.
DISPATCH_GRACE = 1.0
#: Characters of an alerter's error message logged.
FAILURE_LIMIT = 300


class Outcome(enum.Enum):
    """What became of one alert; the value is how ``alert-test`` prints it."""

    SENT = "sent"
    DISABLED = "disabled (not sent)"
    FAILED = "FAILED (see the log above)"
    TIMED_OUT = "TIMED OUT"
    UNKNOWN = "UNKNOWN alerter (not sent)"


@dataclass(frozen=True)
class AlertJob:
    """One alert to deliver, and the rate-limit keys to set once it has been delivered.

    ``alerter`` None means the rule's alerter from the registry; the stale digest names its own.
    """

    rule: AlertRule
    target: Anomaly | StaleMetrics
    context: str
    # (key, ttl, value) triples SETEX'd after a successful send.
    on_success: tuple[tuple[str, int, bytes], ...] = ()
    alerter: Alerter | None = None


class _UnknownAlerters:
    """Unknown alerter names reported for the rules in force: each once, not once per run.

    Keyed by the identity of the parsed rules (held, so the identity cannot be reused): new settings
    report their unknown names afresh.
    """

    def __init__(self) -> None:
        self._rules: tuple[AlertRule, ...] | None = None
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def report(self, rules: tuple[AlertRule, ...], rule: AlertRule) -> None:
        with self._lock:
            if rules is not self._rules:
                self._rules, self._seen = rules, set()
            if rule.alerter in self._seen:
                return
            self._seen.add(rule.alerter)
        _log_unknown(rule)


def _log_unknown(rule: AlertRule) -> None:
    log.error("error :: alerts - ALERTS names an unknown alerter %s (known: %s); its rules never alert",
              excerpt.describe(rule.alerter), ", ".join(alerters.REGISTRY))


_UNKNOWN = _UnknownAlerters()


def _describe(target: Anomaly | StaleMetrics) -> str:
    if isinstance(target, StaleMetrics):
        return f"{len(target.base_names)} stale metrics"
    return f"{excerpt.escape(target.base_name)} {target.value}"


def _set_keys(job: AlertJob, redis: Any) -> None:
    for key, ttl, value in job.on_success:
        try:
            redis.set(key, value, ex=ttl)
        except Exception:
            log.exception("error :: alerts - failed to set %s after alerting", excerpt.escape(key))


def _deliver(job: AlertJob, alerter: Alerter, settings: Settings, redis: Any) -> Outcome:
    try:
        alerter.module.alert(job.rule, job.target, job.context, settings, redis)
    except Exception as exc:
        # One line per failure: a hung receiver fails every alert of every run, and a traceback each
        # would bury the log. The traceback is there at DEBUG for a failure that looks like a bug.
        log.error("error :: alerters - %s - failed to alert on %s: %s: %s", alerter.name, _describe(job.target),
                  type(exc).__name__, excerpt.escape(str(exc), FAILURE_LIMIT))
        log.debug("alerters - %s - the failure in full", alerter.name, exc_info=True)
        return Outcome.FAILED
    _set_keys(job, redis)
    return Outcome.SENT


def _deadline(started: float, count: int, workers: int, settings: Settings) -> float:
    per_waves = float(settings.ALERT_TIMEOUT) * math.ceil(count / workers) + DISPATCH_GRACE
    return started + min(per_waves, float(settings.ALERT_DISPATCH_TIMEOUT))


def _wait(threads: Sequence[threading.Thread], deadline: float, watchdog: Notifier | None) -> None:
    """Join the threads until the deadline, pinging the watchdog at its interval meanwhile."""
    interval = watchdog.watchdog_interval if watchdog is not None else None
    next_ping = time.monotonic()
    for thread in threads:
        while thread.is_alive():
            now = time.monotonic()
            if now >= deadline:
                return
            if watchdog is not None and interval is not None:
                if now >= next_ping:
                    watchdog.watchdog()
                    next_ping = now + interval
                thread.join(min(deadline, next_ping) - now)
            else:
                thread.join(deadline - now)


def dispatch(jobs: Sequence[AlertJob], settings: Settings, redis: Any,
             watchdog: Notifier | None = None) -> list[Outcome]:
    """Deliver the jobs concurrently within the time budget; one :class:`Outcome` per job, in order.

    A job whose alerter is switched off is DISABLED at once: nothing is sent and its keys are set, as
    v1.2.8 set them. TIMED_OUT means the job was still running, or had not started, at the deadline. A
    running job's thread is a daemon thread: it ends within its own socket timeouts and then sets its key.
    ``watchdog`` (the daemon's notifier) is pinged at its interval while the call waits.
    """
    results: list[Outcome | None] = [None] * len(jobs)
    to_send: list[tuple[int, Alerter]] = []
    for index, job in enumerate(jobs):
        alerter = job.alerter or alerters.for_rule(job.rule)
        if alerter is None:
            _log_unknown(job.rule)
            results[index] = Outcome.UNKNOWN
        elif not alerter.enabled(settings):
            log.info("%s alerter not enabled (%s), not alerting on %s", alerter.name, alerter.enabled_by,
                     _describe(job.target))
            _set_keys(job, redis)
            results[index] = Outcome.DISABLED
        else:
            to_send.append((index, alerter))
    if to_send:
        _send(jobs, to_send, results, settings, redis, watchdog)
    # A snapshot: an abandoned thread may still record its result later.
    outcome = [Outcome.TIMED_OUT if result is None else result for result in results]
    unfinished = outcome.count(Outcome.TIMED_OUT)
    if unfinished:
        log.error("error :: alerts - %d of %d alerts did not complete within the time limit", unfinished, len(jobs))
    return outcome


def _send(jobs: Sequence[AlertJob], to_send: list[tuple[int, Alerter]], results: list[Outcome | None],
          settings: Settings, redis: Any, watchdog: Notifier | None) -> None:
    workers = max(1, min(len(to_send), int(settings.ALERT_CONCURRENCY)))
    deadline = _deadline(time.monotonic(), len(to_send), workers, settings)
    pending = iter(to_send)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(pending, None)
            if item is None or time.monotonic() >= deadline:
                return
            index, alerter = item
            results[index] = _deliver(jobs[index], alerter, settings, redis)

    threads = [threading.Thread(target=work, name=f"alert-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    _wait(threads, deadline, watchdog)


def plan_alerts(redis: Any, settings: Settings, anomalies: Iterable[Anomaly]) -> tuple[list[AlertJob], set[str]]:
    """Run step 16's matching and rate limiting; hand Mirage metrics over.

    Returns the jobs to send and the base names handed to Mirage. Rules are the outer loop and anomalies
    the inner one. Per (alerter, metric) only the first matching rule yields a job, and only when
    ``last_alert.<alerter>.<base>`` does not exist. A rule naming an unknown alerter yields nothing.
    A Mirage rule treats a name that :func:`mirage.fit_for_check_file` refuses as a plain rule would.
    """
    anomalies = list(anomalies)
    mirage_enabled = bool(settings.ENABLE_MIRAGE)
    mirage_metrics = redis_state.members(redis, keys.MIRAGE_UNIQUE_METRICS) if mirage_enabled else set()
    handed_to_mirage: set[str] = set()
    claimed: set[tuple[str, str]] = set()
    jobs = []
    rules = alert_rules(settings)
    for rule in rules:
        alerter = alerters.for_rule(rule)
        if alerter is None:
            _UNKNOWN.report(rules, rule)
            continue
        for anomaly in anomalies:
            base = anomaly.base_name
            kind = rule.match(base)
            if kind is None:
                continue
            context = ANALYZER_CONTEXT
            if mirage_enabled and rule.is_mirage and mirage.fit_for_check_file(base):
                if base not in handed_to_mirage:
                    handed_to_mirage.add(base)
                    mirage.hand_to_mirage(redis, settings, rule, anomaly)
                if not settings.ENABLE_FULL_DURATION_ALERTS:
                    continue
                context = MIRAGE_CONTEXT
            else:
                if keys.metric(settings.FULL_NAMESPACE, base) in mirage_metrics:
                    continue
                if mirage_enabled and redis_state.exists(redis, keys.mirage_metric(base)) is not False:
                    continue
            if (rule.alerter, base) in claimed:
                continue
            cache_key = keys.last_alert(rule.alerter, base)
            if redis_state.exists(redis, cache_key) is not False:
                continue
            claimed.add((rule.alerter, base))
            log.info("triggering alert :: %s %s via %s - matched by %s", excerpt.escape(base), anomaly.value,
                     excerpt.escape(rule.alerter), kind)
            on_success = ((cache_key, rule.expiration, redis_state.packed(anomaly.value)),)
            jobs.append(AlertJob(rule, anomaly, context, on_success, alerter))
    return jobs, handed_to_mirage


def send_alerts(redis: Any, settings: Settings, anomalies: list[Anomaly], now: float,
                watchdog: Notifier | None = None) -> int:
    """Run step 16 in full: match, rate-limit, hand Mirage metrics over and send, within the time budget.

    Returns how many metrics were handed to Mirage (the run's ``sent_to_mirage``). ``now`` is the run's
    start time, used for logging; ``watchdog`` is pinged while alerts are in flight. Every error is
    logged; nothing raises to the caller.
    """
    try:
        jobs, handed_to_mirage = plan_alerts(redis, settings, anomalies)
        results = dispatch(jobs, settings, redis, watchdog)
    except SettingsError as exc:
        log.error("error :: alerts - no alerts in the run started at %s: %s", int(now), exc)
        return 0
    except Exception:
        log.exception("error :: alerts - alerting failed in the run started at %s", int(now))
        return 0
    if jobs:
        log.info("alerts :: %s", ", ".join(f"{results.count(o)} {o.name.lower()}" for o in Outcome
                                          if results.count(o)))
    return len(handed_to_mirage)
