"""The ``smtp`` alerter (docs/alerts.md#alerters): one HTML mail per alert, with a plot of the metric's Redis data.

Also used for a legacy ALERTS alerter that is an e-mail address. Departures from v1.2.8:

* The mail goes through ``SMTP_HOST:SMTP_PORT`` (v1.2.8: always ``127.0.0.1:25``) with optional STARTTLS
  and AUTH, every socket operation bounded by ``ALERT_TIMEOUT``.
* Every recipient is its own envelope address (FIX R3); To is the first, Cc the others.
* The mail is sent whatever ``IONOSPHERE_ENABLED`` says (FIX R2); Ionosphere training files and links are
  out of scope and not produced.
* The legacy e-mail-address alerter works, with ``ALERT_SENDER`` or else ``SMTP_OPTS['sender']`` (FIX R1).
* The plot is made in memory, never written to SKYLINE_TMP_DIR; it marks the anomalous datapoint and the
  mail lists the algorithms that triggered.
"""

from __future__ import annotations

import html
import logging
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from typing import Any

from skyline_analyzer import __version__, excerpt
from skyline_analyzer.alerting.alerters import links, plot
from skyline_analyzer.alerting.alerters.http import get_bytes
from skyline_analyzer.alerting.rules import AlertRule
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly

log = logging.getLogger(__name__)

#: The red-and-blue "Skyline" of the mail headings.
SKYLINE_HEADING = '<font color="#dd3023">Sky</font><font color="#6698FF">line</font>'
#: Characters of a metric name kept in a Subject or a plot title (escaped; longer names end with ...).
NAME_LIMIT = 200

_NOT_HEADER_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def recipients(settings: Settings, rule: AlertRule) -> tuple[str, list[str]]:
    """``(sender, distinct recipients)`` for an alert rule.

    An e-mail-address alerter mails that address from ALERT_SENDER (or SMTP_OPTS['sender']). Otherwise
    ``SMTP_OPTS['recipients'][pattern]`` (the exact pattern string), else ``default_recipient``; a plain
    string is one recipient. Raises :class:`LookupError` when there is nobody to mail.
    """
    opts = settings.SMTP_OPTS
    if "@" in rule.alerter:
        return settings.get("ALERT_SENDER") or opts["sender"], [rule.alerter]
    found = opts.get("recipients", {}).get(rule.pattern)
    if found is None:
        found = opts.get("default_recipient")
    if not found:
        raise LookupError(f"no SMTP_OPTS recipients for {rule.pattern!r} and no default_recipient")
    if isinstance(found, str):
        found = [found]
    return opts["sender"], list(dict.fromkeys(found))


def html_part(text: str) -> MIMENonMultipart:
    """An HTML body part, UTF-8, quoted-printable (as v1.2.8 sent it)."""
    charset = Charset("utf-8")
    charset.body_encoding = QP
    part = MIMENonMultipart("text", "html")
    part.set_payload(text, charset)
    return part


def addressed(message: MIMEMultipart, subject: str, sender: str, to: list[str]) -> MIMEMultipart:
    """Set Subject, From, To (the first recipient) and Cc (the others)."""
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to[0]
    if len(to) > 1:
        message["Cc"] = ", ".join(to[1:])
    return message


def send_mail(settings: Settings, sender: str, to: list[str], message: MIMEBase) -> None:
    """Deliver through SMTP_HOST:SMTP_PORT: STARTTLS and AUTH when configured, one envelope rcpt each."""
    timeout = float(settings.ALERT_TIMEOUT)
    with smtplib.SMTP(settings.SMTP_HOST, int(settings.SMTP_PORT), timeout=timeout) as smtp:
        if settings.SMTP_STARTTLS:
            smtp.starttls(context=ssl.create_default_context())
        if settings.SMTP_USER:
            smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
        refused = smtp.sendmail(sender, to, message.as_string())
    if refused:
        log.warning("smtp alerter :: the server refused %s", ", ".join(sorted(refused)))


def _image(data: bytes, content_id: str, filename: str) -> MIMEImage:
    part = MIMEImage(data, "png")
    part.add_header("Content-ID", f"<{content_id}>")
    part.add_header("Content-Disposition", "inline", filename=filename)
    return part


def header_safe(base: str) -> str:
    """The name as it may stand in a Content-ID or a file name: ASCII letters, digits, ``.``, ``_``, ``-``.

    Ordinary metric names pass unchanged; anything else (a newline, ``>``, a quote) could end the header.
    """
    return _NOT_HEADER_SAFE.sub("", base)


def _graphite_image(settings: Settings, link: str | None, base: str) -> bytes | None:
    if link is None:
        return None
    try:
        return get_bytes(link, min(float(settings.ALERT_TIMEOUT),
                                   float(settings.GRAPHITE_CONNECT_TIMEOUT + settings.GRAPHITE_READ_TIMEOUT)))
    except Exception as exc:
        log.warning("smtp alerter :: no Graphite image for %s: %s", excerpt.escape(base), excerpt.escape(str(exc)))
        return None


def _plot(redis: Any, settings: Settings, anomaly: Anomaly, base: str, context: str,
          derivative: bool) -> tuple[bytes, plot.SeriesStats] | None:
    """The Redis data plot, or None (logged) when there is no data or it cannot be drawn: the mail goes anyway."""
    pairs = plot.redis_series(redis, settings, base, derivative)
    if not pairs:
        return None
    graph = " (derivative graph)" if derivative else ""
    title = (f"Skyline {context} - ALERT - at {links.hours(settings)} hours - Redis data{graph}\n"
             f"{excerpt.escape(base, NAME_LIMIT)} - anomalous value: {anomaly.value}")
    try:
        return plot.render(pairs, title, (anomaly.timestamp, anomaly.value))
    except Exception:
        log.exception("error :: smtp alerter :: cannot plot %s", excerpt.escape(base))
        return None


def build_message(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any,
                  sender: str, to: list[str]) -> MIMEMultipart:
    """The alert mail: two HTML parts (kept apart for SMTP's line-length limit) and the inline images.

    The metric name is HTML-escaped in the body, escaped and bounded in the Subject, and reduced to
    :func:`header_safe` in the images' Content-ID and file names.
    """
    base = links.base_name(settings, anomaly.base_name)
    hours_shown = links.hours(settings)
    derivative = links.is_derivative(redis, settings, base)
    embed = bool(settings.SMTP_OPTS.get("embed-images", True))
    link = links.graphite_link(settings, base, anomaly.timestamp, context, anomaly.value,
                               derivative=derivative, always_port=True)
    graphite_png = _graphite_image(settings, link, base) if embed else None
    redis_plot = _plot(redis, settings, anomaly, base, context, derivative) if embed and settings.PLOT_REDIS_DATA \
        else None
    name = html.escape(base)
    cid = header_safe(base)
    at = datetime.fromtimestamp(int(anomaly.timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S")
    triggered = ", ".join(anomaly.triggered) if anomaly.triggered else "none reported"
    body = (
        f"<h3>{SKYLINE_HEADING} {html.escape(context)} alert</h3><br>"
        f"metric: <b>{name}</b><br>"
        f"Anomalous value: {anomaly.value}<br>"
        f"Anomaly timestamp: {int(anomaly.timestamp)}<br>"
        f"Anomalous at: {at} UTC<br>"
        f"At hours: {hours_shown}<br>"
        f"Next alert in: {rule.expiration} seconds<br>"
        f"Triggered algorithms: {html.escape(triggered)}<br>"
    )
    if derivative:
        body += "Derivative graph: True<br>"
    more = ""
    if redis_plot is not None:
        figures = redis_plot[1]
        more += (
            f"<br>min: {figures.minimum:.2f} | max: {figures.maximum:.2f} | mean: {figures.mean:.2f}<br>"
            f"3-sigma: {figures.three_sigma:.2f}<br>"
            f"3-sigma upper bound: {figures.upper:.2f} | 3-sigma lower bound: {figures.lower:.2f}<br>"
            f"<h3><b>Redis data at FULL_DURATION</b></h3><br>"
            f'<img src="cid:redis.{cid}"/><br>'
        )
    if graphite_png is not None:
        more += (f"<h3><b>Graphite data at FULL_DURATION (may be aggregated)</b></h3>"
                 f'<a href="{html.escape(link)}"><img src="cid:{cid}"/></a><br>')
    elif link is not None:
        more += f'<h3><b>Graphite data at FULL_DURATION</b></h3><img src="{html.escape(link)}"/><br>'
    if embed and not settings.PLOT_REDIS_DATA:
        more += "<br>Set PLOT_REDIS_DATA = True to attach a plot of the Redis data.<br>"
    more += f'<p align="right"><font size="1">Skyline version :: {__version__}</font></p>'
    subject = f"[Skyline alert] - {context} ALERT - {excerpt.escape(base, NAME_LIMIT)}"
    message = addressed(MIMEMultipart(), subject, sender, to)
    message.attach(html_part(body))
    message.attach(html_part(more))
    if redis_plot is not None:
        message.attach(_image(redis_plot[0], f"redis.{cid}", f"{cid}.redis.plot.{hours_shown}h.png"))
    if graphite_png is not None:
        message.attach(_image(graphite_png, cid, f"{cid}.graphite.{hours_shown}h.png"))
    return message


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """Build and send the alert mail; raises when there are no recipients or the SMTP exchange fails."""
    sender, to = recipients(settings, rule)
    send_mail(settings, sender, to, build_message(rule, anomaly, context, settings, redis, sender, to))
