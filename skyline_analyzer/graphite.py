"""Sending the daemons' own metrics to carbon over the plaintext protocol (docs/formats.md#carbon-plaintext-lines).

Each line is ``"<name> <value> <timestamp>\\n"``. The original opened one TCP connection per metric; a run
here collects its metrics and sends them all over **one** connection, with a timeout on connect and send.
Graphite being down costs a log line and never the run. ``GRAPHITE_HOST = ''`` disables sending.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable

from skyline_analyzer.config import Settings

log = logging.getLogger(__name__)

#: Seconds allowed to connect to carbon and to send a batch (the original's connect timeout).
TIMEOUT = 10.0
#: The longest a batch can take: resolving GRAPHITE_HOST (the C resolver's default retries stay within
#: 30 s), then the connect and the whole send, each within TIMEOUT.
LONGEST_SEND = 30 + 2 * TIMEOUT

Metric = tuple[str, object]


def format_lines(metrics: Iterable[Metric], timestamp: float) -> bytes:
    """The plaintext payload: one line per metric, the value rendered with ``str()`` (strings as given)."""
    stamp = int(timestamp)
    return "".join(f"{name} {value} {stamp}\n" for name, value in metrics).encode()


def enabled(settings: Settings) -> bool:
    """Sending is on unless ``GRAPHITE_HOST`` is empty."""
    return bool(settings.GRAPHITE_HOST)


def send_metrics(
    settings: Settings,
    metrics: Iterable[Metric],
    *,
    timestamp: float | None = None,
    timeout: float = TIMEOUT,
) -> bool:
    """Send ``(name, value)`` pairs to ``GRAPHITE_HOST:CARBON_PORT`` over one connection.

    Every line carries ``timestamp`` (default: now). Returns True when the whole batch was written,
    False when sending is disabled, there is nothing to send, or carbon could not be reached (logged).
    """
    metrics = list(metrics)
    if not enabled(settings) or not metrics:
        return False
    payload = format_lines(metrics, time.time() if timestamp is None else timestamp)
    address = (settings.GRAPHITE_HOST, int(settings.CARBON_PORT))
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(payload)
    except OSError as exc:
        log.error("error :: cannot send %d metrics to Graphite at %s:%s: %s", len(metrics), *address, exc)
        return False
    log.debug("sent %d metrics to Graphite at %s:%s", len(metrics), *address)
    return True


class MetricBatch:
    """The metrics one run collects, in the order added, sent together by :meth:`flush`."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.metrics: list[Metric] = []

    def add(self, name: str, value: object) -> None:
        """Queue ``<namespace>.<name> <value>``."""
        self.metrics.append((f"{self.namespace}.{name}", value))

    def flush(self, settings: Settings, *, timestamp: float | None = None) -> bool:
        """Send everything queued (see :func:`send_metrics`) and start an empty batch."""
        metrics, self.metrics = self.metrics, []
        return send_metrics(settings, metrics, timestamp=timestamp)
