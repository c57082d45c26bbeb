"""The alerters, one module per channel, and the registry that names them.

Every alerter module exposes::

    alert(rule, target, context, settings, redis) -> None

``rule`` is the matching :class:`skyline_analyzer.alerting.rules.AlertRule`; ``target`` is an
:class:`skyline_analyzer.detection.anomaly.Anomaly` (or, for the stale digest, a
:class:`skyline_analyzer.alerting.alerters.stale_digest.StaleMetrics`); ``context`` is the app the alert is
sent for (``'Analyzer'`` or ``'Mirage'``). The function returns once the alert was handed to its receiver
and raises on any failure, so that dispatch leaves the rate-limit key unset and the next run tries again.
Network alerters bound every socket operation by ``ALERT_TIMEOUT``.

:data:`REGISTRY` is the one place an ALERTS alerter name is resolved and its switch is read: an alerter
whose enabling setting is False is not called at all. A new alerter is a module here and one line in
:data:`REGISTRY` (and its name in ``defaults.ALERTER_NAMES``, which settings validation reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType, ModuleType

from skyline_analyzer.alerting.alerters import pagerduty, slack, smtp, stale_digest, syslog, webhook
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings


@dataclass(frozen=True)
class Alerter:
    """A channel: its name, the module whose ``alert`` sends, and the bool setting that switches it on.

    ``enabled_by`` None means the channel is always on (smtp, as in v1.2.8, and the stale digest, which
    the daemon calls only when ALERT_ON_STALE_METRICS is set).
    """

    name: str
    module: ModuleType
    enabled_by: str | None

    def enabled(self, settings: Settings) -> bool:
        return self.enabled_by is None or bool(settings[self.enabled_by])


#: The alerters an ALERTS entry may name; an e-mail address names smtp (see :attr:`AlertRule.channel`).
REGISTRY: MappingProxyType[str, Alerter] = MappingProxyType({alerter.name: alerter for alerter in (
    Alerter("smtp", smtp, None),
    Alerter("syslog", syslog, "SYSLOG_ENABLED"),
    Alerter("slack", slack, "SLACK_ENABLED"),
    Alerter("pagerduty", pagerduty, "PAGERDUTY_ENABLED"),
    Alerter("webhook", webhook, "WEBHOOK_ENABLED"),
)})

#: The stale metrics digest: sent by the daemon itself, never named in ALERTS.
STALE_DIGEST = Alerter("stale_digest", stale_digest, None)


def for_rule(rule: AlertRule) -> Alerter | None:
    """The alerter serving ``rule``, None when its name is not in :data:`REGISTRY`."""
    return REGISTRY.get(rule.channel)
