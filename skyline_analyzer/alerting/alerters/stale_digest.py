"""The ``stale_digest`` alerter (docs/alerts.md#the-stale-digest): one mail listing the metrics gone stale.

Sent to the first ``SMTP_OPTS['default_recipient']`` only, through the smtp alerter's transport.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from skyline_analyzer import excerpt
from skyline_analyzer.alerting.alerters.smtp import NAME_LIMIT, SKYLINE_HEADING, compose, send_mail
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings


@dataclass(frozen=True)
class StaleMetrics:
    """What the stale digest reports: the base names that went stale and when the digest was made."""

    base_names: tuple[str, ...]
    timestamp: int


def build_message(stale: StaleMetrics, context: str, settings: Settings, sender: str, to: str) -> EmailMessage:
    """Subject ``[Skyline alert] - <context> ALERT - <n> stale metrics`` and one line per metric.

    Names are HTML-escaped in the HTML part, escaped and bounded in the text part.
    """
    count = len(stale.base_names)
    heading = f"Stale metrics (no data sent for ~{settings.ALERT_ON_STALE_PERIOD} seconds):"
    text = (f"Skyline {context} alert\n\n{heading}\n"
            + "".join(f"{excerpt.escape(name, NAME_LIMIT)}\n" for name in stale.base_names))
    markup = (
        f"<html><body>\n<h3>{SKYLINE_HEADING} {html.escape(context)} alert</h3><br>\n{heading}<br>"
        + "".join(f"{html.escape(name)}<br>\n" for name in stale.base_names)
        + "</body></html>\n"
    )
    return compose(f"[Skyline alert] - {context} ALERT - {count} stale metrics", sender, [to], text, markup)


def alert(rule: AlertRule, stale: StaleMetrics, context: str, settings: Settings, redis: Any) -> None:
    """Mail the digest; raises when there is no default recipient or the SMTP exchange fails."""
    recipients = settings.SMTP_OPTS.get("default_recipient")
    if isinstance(recipients, str):
        recipients = [recipients]
    if not recipients:
        raise LookupError("the stale digest needs SMTP_OPTS['default_recipient']")
    sender = settings.SMTP_OPTS["sender"]
    send_mail(settings, sender, [recipients[0]], build_message(stale, context, settings, sender, recipients[0]))
