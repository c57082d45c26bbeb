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
from skyline_analyzer.detection.anomaly import Anomaly

#: The metric name the default ALERTS reserve for testing alerters.
DEFAULT_TEST_METRIC = "skyline_test.alerters.test"

_OUTCOME = {True: "sent", False: "FAILED (see the log above)", None: "TIMED OUT"}


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
    matching = [tuple(alert) for alert in settings.ALERTS if alerts.match_rule(alert[0], metric)]
    if settings.SYSLOG_ENABLED and not any(alert[1] == "syslog" for alert in matching):
        matching.append((metric, "syslog", 1))
    return [alerts.AlertJob(alert, anomaly, alerts.ANALYZER_CONTEXT) for alert in matching]


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
        print(f"{job.alert[1]:<12} {job.alert[0]!r:<40} {_OUTCOME[result]}")
    return 0 if all(results) else 1
