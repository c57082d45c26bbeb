"""The ``slack`` alerter (docs/alerts.md#alerters): a message with the Graphite link to each channel of the pattern.

Two ways in, chosen by SLACK_OPTS: ``webhook_url`` (an incoming webhook; its channel is fixed by Slack)
or the bot token with ``chat.postMessage`` to every channel in ``channels[pattern]``, at
``api_url`` (default ``https://slack.com/api``, a setting so that tests can use a local server).
v1.2.8 uploaded the Graphite PNG with ``files.upload``; that API is retired, so the message carries the
render link instead, and the no-image path that crashed v1.2.8 (R5) does not exist any more.
"""

from __future__ import annotations

import html
import json
from typing import Any

from skyline_analyzer.alerting.alerters import links
from skyline_analyzer.alerting.alerters.http import post_json
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

DEFAULT_ICON = ":chart_with_upwards_trend:"


def text(anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> str:
    """``*Skyline <context> - ALERT* on <metric> at <H> hours - [derivative graph - ]<value>`` and links.

    The name has ``&``, ``<`` and ``>`` escaped as Slack asks, so that it cannot forge a link or a mention.
    """
    base = links.base_name(settings, anomaly.base_name)
    derivative = links.is_derivative(redis, settings, base)
    middle = "derivative graph - " if derivative else ""
    name = html.escape(base, quote=False)
    message = f"*Skyline {context} - ALERT* on {name} at {links.hours(settings)} hours - {middle}{anomaly.value}"
    link = links.graphite_link(settings, base, anomaly.timestamp, context, anomaly.value,
                               derivative=derivative, always_port=False)
    if link is not None:
        message += f" :: <{link}|graphite image link>"
    if anomaly.triggered:
        message += f"\n*Triggered algorithms* :: {', '.join(anomaly.triggered)}"
    if anomaly.second_stage_reason() is not None:
        message += f"\n*Second stage* :: {html.escape(anomaly.second_stage_reason() or '', quote=False)}"
    return message


def channels(settings: Settings, pattern: str) -> list[str]:
    """``SLACK_OPTS['channels'][pattern]``; a plain string is one channel. LookupError when missing."""
    found = settings.SLACK_OPTS.get("channels", {}).get(pattern)
    if not found:
        raise LookupError(f"no SLACK_OPTS channels for {pattern!r}")
    return [found] if isinstance(found, str) else list(found)


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """Post the message; raises on an HTTP error, a timeout, or a Web API answer with ``ok`` false."""
    opts = settings.SLACK_OPTS
    timeout = float(settings.ALERT_TIMEOUT)
    message = text(anomaly, context, settings, redis)
    icon = opts.get("icon_emoji", DEFAULT_ICON)
    if opts.get("webhook_url"):
        post_json(opts["webhook_url"], {"text": message, "icon_emoji": icon, "username": "Skyline"}, timeout)
        return
    token = opts["bot_user_oauth_access_token"]
    url = opts.get("api_url", "https://slack.com/api").rstrip("/") + "/chat.postMessage"
    failures = []
    for channel in channels(settings, rule.pattern):
        reply = json.loads(post_json(url, {"channel": channel, "text": message, "icon_emoji": icon},
                                          timeout, {"Authorization": f"Bearer {token}"}))
        if not reply.get("ok"):
            failures.append(f"{channel}: {reply.get('error', 'no error given')}")
    if failures:
        raise RuntimeError(f"slack chat.postMessage failed for {'; '.join(failures)}")
