"""The ``pagerduty`` alerter (docs/departures.md#r8): a trigger event through the PagerDuty Events API v2.

v1.2.8 used pygerduty and the retired integration API; the summary keeps its text,
``'<context> alert - <value> - <metric>'``. PAGERDUTY_OPTS gives ``routing_key`` (the integration key;
the legacy ``key`` is used when it is absent), ``events_url`` and ``severity``.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from skyline_analyzer.alerting.alerters import links
from skyline_analyzer.alerting.alerters.http import post_json
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def event(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings) -> dict[str, Any]:
    """The Events API v2 trigger; the dedup key groups repeated alerts of a metric into one incident."""
    opts = settings.PAGERDUTY_OPTS
    base = links.base_name(settings, anomaly.base_name)
    return {
        "routing_key": opts.get("routing_key") or opts["key"],
        "event_action": "trigger",
        "dedup_key": f"skyline.{context.lower()}.{base}",
        "client": "Skyline",
        "client_url": settings.SKYLINE_URL,
        "payload": {
            "summary": f"{context} alert - {anomaly.value} - {base}",
            "source": socket.gethostname(),
            "severity": opts.get("severity", "error"),
            "timestamp": datetime.fromtimestamp(float(anomaly.timestamp), UTC).isoformat(),
            "component": base,
            "group": context,
            "class": "anomaly",
            "custom_details": {
                "metric": base,
                "value": anomaly.value,
                "metric_timestamp": anomaly.timestamp,
                "triggered_algorithms": list(anomaly.triggered),
                "alert_pattern": rule.pattern,
                **({"second_stage": anomaly.second_stage} if anomaly.second_stage is not None else {}),
            },
        },
    }


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """POST the event; raises on an HTTP error status, a refused connection or a timeout."""
    url = settings.PAGERDUTY_OPTS.get("events_url") or DEFAULT_EVENTS_URL
    post_json(url, event(rule, anomaly, context, settings), float(settings.ALERT_TIMEOUT))
