"""``skyline-analyzer alert-test METRIC``: send a test alert through every alerter whose tuple matches.

Like v1.2.8's ``utils/verify_alerts.py --trigger True --metric METRIC`` (docs/alerts.md#testing-the-alerters):
every ALERTS tuple that matches the name (docs/alerts.md#matching) is triggered once, ignoring and leaving
alone the ``last_alert`` rate-limit keys, and a syslog line is added when SYSLOG_ENABLED and no tuple
already sends one. The alerts are sent with the settings in force, bounded by ALERT_TIMEOUT.
"""

from __future__ import annotations

import argparse
import sys
import time

from skyline_analyzer import config, connections
from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.alerting.rules import AlertRule, alert_rules
from skyline_analyzer.detection.anomaly import Anomaly

#: The metric name the default ALERTS reserve for testing alerters.
DEFAULT_TEST_METRIC = "skyline_test.alerters.test"

#: Outcomes that leave nothing to fix: the exit status is 0 when every alert ended in one of them.
_FINE = {alerts.Outcome.SENT, alerts.Outcome.DISABLED}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "alert-test",
        help="send a test alert through every alerter whose ALERTS tuple matches a metric name",
        description="Trigger every ALERTS tuple matching METRIC once (no rate limiting) and report each result.",
    )
    parser.add_argument("metric", nargs="?", default=DEFAULT_TEST_METRIC, metavar="METRIC",
                        help=f"the metric name to alert on (default: {DEFAULT_TEST_METRIC})")
    parser.add_argument("--value", type=float, default=0.0, help="the anomalous value to report (default: 0)")
    parser.set_defaults(handler=run)


def test_jobs(settings: config.Settings, metric: str, value: float, now: float) -> list[alerts.AlertJob]:
    """One job per matching ALERTS tuple, plus a syslog job when syslog is on and no tuple covers it."""
    anomaly = Anomaly(value, metric, int(now), ("alert-test",))
    matching = [rule for rule in alert_rules(settings) if rule.match(metric)]
    if settings.SYSLOG_ENABLED and not any(rule.alerter == "syslog" for rule in matching):
        matching.append(AlertRule(metric, "syslog", 1))
    return [alerts.AlertJob(rule, anomaly, alerts.ANALYZER_CONTEXT) for rule in matching]


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    jobs = test_jobs(settings, args.metric, args.value, time.time())
    if not jobs:
        print(f"no ALERTS tuple matches {args.metric!r} and syslog is off: nothing to send", file=sys.stderr)
        return 1
    redis = connections.connect(settings)
    try:
        results = alerts.dispatch(jobs, settings, redis)
    finally:
        redis.close()
    for job, result in zip(jobs, results, strict=True):
        print(f"{job.rule.alerter:<12} {job.rule.pattern!r:<40} {result.value}")
    return 0 if all(result in _FINE for result in results) else 1
