"""The ``webhook`` alerter (new; replaces HipChat): the anomaly as JSON, POSTed to every URL of the pattern.

WEBHOOK_OPTS: ``urls`` maps an ALERTS pattern (the exact string) to a URL or a list of URLs,
``default_urls`` serves patterns not listed, ``headers`` are added to each request (e.g. a token).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skyline_analyzer import __version__
from skyline_analyzer.alerting.alerters import links
from skyline_analyzer.alerting.alerters.http import post_json
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly


def urls(settings: Settings, pattern: str) -> list[str]:
    """The pattern's URLs, else ``default_urls``; LookupError when there are none."""
    opts = settings.WEBHOOK_OPTS
    found = opts.get("urls", {}).get(pattern) or opts.get("default_urls")
    if not found:
        raise LookupError(f"no WEBHOOK_OPTS urls for {pattern!r} and no default_urls")
    return [found] if isinstance(found, str) else list(found)


def payload(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> dict[str, Any]:
    """The JSON document: the anomaly, the matching rule and a Graphite link (null without Graphite)."""
    base = links.base_name(settings, anomaly.base_name)
    derivative = links.is_derivative(redis, settings, base)
    return {
        "metric": base,
        "value": anomaly.value,
        "timestamp": anomaly.timestamp,
        "anomalous_at": datetime.fromtimestamp(float(anomaly.timestamp), UTC).isoformat(),
        "triggered_algorithms": list(anomaly.triggered),
        "context": context,
        "derivative": derivative,
        "full_duration": int(settings.FULL_DURATION),
        "alert": {
            "pattern": rule.pattern,
            "alerter": rule.alerter,
            "expiration_time": rule.expiration,
            "second_order_resolution_hours": rule.second_order_resolution_hours,
        },
        "graph_url": links.graphite_link(settings, base, anomaly.timestamp, context, anomaly.value,
                                         derivative=derivative, always_port=False),
        "source": "skyline-analyzer",
        **({"second_stage": anomaly.second_stage} if anomaly.second_stage is not None else {}),
        "version": __version__,
    }


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """POST to every URL; raises after trying them all when any failed (the alert is retried next run)."""
    document = payload(rule, anomaly, context, settings, redis)
    headers = dict(settings.WEBHOOK_OPTS.get("headers", {}))
    failures = []
    for url in urls(settings, rule.pattern):
        try:
            post_json(url, document, float(settings.ALERT_TIMEOUT), headers)
        except Exception as exc:
            failures.append(f"{url}: {exc}")
    if failures:
        raise RuntimeError(f"webhook POST failed for {'; '.join(failures)}")
