"""What several alerters derive from an anomaly: the Graphite render link and the derivative status.

docs/alerts.md#graphite-links-and-derivative-graphs.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from skyline_analyzer import excerpt, keys
from skyline_analyzer.config import Settings
from skyline_analyzer.matching import in_list

log = logging.getLogger(__name__)

#: Graphite's from/until format, rendered in the server's local time (PRESERVE R7).
GRAPHITE_TIME_FORMAT = "%H:%M_%Y%m%d"


def hours(settings: Settings) -> int:
    """``FULL_DURATION`` in whole hours, as the alerts state it."""
    return int(settings.FULL_DURATION / 3600)


def base_name(settings: Settings, name: str) -> str:
    """The name with FULL_NAMESPACE stripped, defensively (alerters may be handed either form)."""
    return keys.base_name(settings.FULL_NAMESPACE, name)


def is_derivative(redis: Any, settings: Settings, base: str) -> bool:
    """The metric is in ``derivative_metrics`` and not excluded by NON_DERIVATIVE_MONOTONIC_METRICS.

    A Redis error counts as "not derivative" (logged): the graph is then drawn from the raw values.
    """
    full_key = keys.metric(settings.FULL_NAMESPACE, base)
    try:
        member = bool(redis.sismember(keys.DERIVATIVE_METRICS, full_key))
    except Exception:
        log.exception("error :: alerters - failed to check %s in %s", excerpt.escape(full_key),
                      keys.DERIVATIVE_METRICS)
        return False
    return member and not in_list(full_key, settings.NON_DERIVATIVE_MONOTONIC_METRICS)


def graph_title(context: str, hours_shown: int, value: Any, derivative: bool) -> str:
    """``Skyline <context> - ALERT at <H> hours - [derivative graph - ]<value>``."""
    middle = " - derivative graph" if derivative else ""
    return f"Skyline {context} - ALERT at {hours_shown} hours{middle} - {value}"


def graphite_link(
    settings: Settings, base: str, timestamp: Any, context: str, value: Any, *, derivative: bool,
    always_port: bool,
) -> str | None:
    """The Graphite render URL of the FULL_DURATION before the anomaly; None when GRAPHITE_HOST is ''.

    ``always_port`` is the smtp alerter's form, which writes ``:80`` when GRAPHITE_PORT is ''; slack and
    the others leave the port out then.
    """
    if not settings.GRAPHITE_HOST:
        return None
    until = int(timestamp)
    since = until - int(settings.FULL_DURATION)
    port = str(settings.GRAPHITE_PORT)
    if port:
        netloc = f"{settings.GRAPHITE_HOST}:{port}"
    else:
        netloc = f"{settings.GRAPHITE_HOST}:80" if always_port else settings.GRAPHITE_HOST
    target = f"nonNegativeDerivative({base})" if derivative else base
    # Quoted, a name cannot add query parameters or end the link where it is embedded (HTML, Slack).
    target = quote(f"cactiStyle({target})", safe="()")
    title = quote(graph_title(context, hours(settings), value, derivative), safe="")
    return (
        f"{settings.GRAPHITE_PROTOCOL}://{netloc}/render/?from={_local(since)}&until={_local(until)}"
        f"&target={target}{settings.GRAPHITE_GRAPH_SETTINGS}&title={title}&colorList=orange"
    )


def _local(epoch: int) -> str:
    return time.strftime(GRAPHITE_TIME_FORMAT, time.localtime(epoch))
