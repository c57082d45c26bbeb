"""The ``syslog`` alerter (docs/alerts.md#alerters): one LOG_LOCAL4 warning line per anomalous metric.

The line is written straight to the syslog socket (``SYSLOG_OPTS['address']``, default ``/dev/log``;
a ``[host, port]`` pair sends over UDP) in the BSD format that ``openlog(ident, LOG_PID, LOG_LOCAL4)``
plus ``syslog(LOG_WARNING, ...)`` produce, so the destination is configurable. The ident is always
``SYSLOG_OPTS['ident']`` (FIX R9: v1.2.8 hard-coded ``skyline`` on Python 2.7).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from skyline_analyzer import excerpt
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

#: LOG_LOCAL4 (20) shifted into the facility bits, plus LOG_WARNING (4).
PRIORITY = 20 * 8 + 4
#: Characters of a metric name kept in the line (escaped; a longer name ends with ...).
NAME_LIMIT = 512


def message(anomaly: Anomaly, context: str) -> str:
    """The alert text: ``'<context> - Anomalous metric: <metric> (value: <v>)'``, the name escaped.

    Escaped, a name cannot end the line early or carry terminal escape sequences into the log.
    """
    text = f"{context} - Anomalous metric: {excerpt.escape(anomaly.base_name, NAME_LIMIT)} (value: {anomaly.value})"
    reason = anomaly.second_stage_reason()
    return text if reason is None else f"{text} - second stage {reason}"


def datagram(ident: str, text: str, when: float | None = None) -> bytes:
    """``<164>Mon dd HH:MM:SS ident[pid]: text`` as the C library's syslog() sends it."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    # The C library pads a single-digit day with a space, not a zero.
    if stamp[4] == "0":
        stamp = f"{stamp[:4]} {stamp[5:]}"
    return f"<{PRIORITY}>{stamp} {ident}[{os.getpid()}]: {text}".encode()


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """Send the syslog line; raises when the socket refuses it."""
    opts = settings.SYSLOG_OPTS
    address = opts.get("address", "/dev/log")
    payload = datagram(opts.get("ident", "skyline"), message(anomaly, context))
    if isinstance(address, str):
        family, destination = socket.AF_UNIX, address
    else:
        family, destination = socket.AF_INET, (address[0], int(address[1]))
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(float(settings.ALERT_TIMEOUT))
        sock.sendto(payload, destination)
