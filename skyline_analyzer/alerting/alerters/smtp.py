"""The ``smtp`` alerter (docs/alerts.md#the-alert-mail): one mail per alert, with a plot of the metric's Redis data.

Also used for a legacy ALERTS alerter that is an e-mail address. Departures from v1.2.8:

* The mail goes through ``SMTP_HOST:SMTP_PORT`` (v1.2.8: always ``127.0.0.1:25``), over SMTPS
  (``SMTP_SSL``) or STARTTLS (``SMTP_STARTTLS``) with the server's certificate verified, and with AUTH when
  ``SMTP_USER`` is set; every socket operation is bounded by ``ALERT_TIMEOUT``.
* The mail is built with the ``email`` package's modern API: Date and Message-ID headers, a text/plain
  part and its HTML alternative, the images inline in the HTML part (v1.2.8: two HTML parts, no Date).
* Every recipient is its own envelope address (FIX R3); To is the first, Cc the others.
* The mail is sent whatever ``IONOSPHERE_ENABLED`` says (FIX R2); Ionosphere training files and links are
  out of scope and not produced.
* The legacy e-mail-address alerter works, with ``ALERT_SENDER`` or else ``SMTP_OPTS['sender']`` (FIX R1).
* The plot is made in memory, never written to SKYLINE_TMP_DIR; it is titled with the window the data
  covers, marks the anomalous datapoint, and the mail lists the algorithms that triggered.
* The Graphite image is embedded only when it was fetched and is a PNG; otherwise the mail has a link.
"""

from __future__ import annotations

import html
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
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
#: Characters of a metric name kept in a Subject or the text part (escaped; longer names end with ...).
NAME_LIMIT = plot.NAME_LIMIT
#: Bytes of a Graphite render image read at most: a render is tens of kB, and the whole mail must stay
#: under a mail server's size limit (commonly 10 MB or more).
GRAPHITE_IMAGE_LIMIT = 4 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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


def header_safe(base: str) -> str:
    """The name as it may stand in a Content-ID, a file name or a Message-ID domain.

    Only ASCII letters, digits, ``.``, ``_`` and ``-`` are kept: ordinary metric names pass unchanged;
    anything else (a newline, ``>``, a quote) could end the header.
    """
    return _NOT_HEADER_SAFE.sub("", base)


def compose(subject: str, sender: str, to: Sequence[str], text: str, markup: str) -> EmailMessage:
    """A ``multipart/alternative`` mail: ``text`` as text/plain, ``markup`` as its text/html alternative.

    From, To (the first recipient), Cc (the others), Subject, Date (now, UTC) and a Message-ID in the
    sender's domain. Both parts are quoted-printable UTF-8, which keeps every line under SMTP's limit.
    ``subject`` must already be escaped: a header value cannot hold a line break.
    """
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to[0]
    if len(to) > 1:
        message["Cc"] = ", ".join(to[1:])
    message["Date"] = format_datetime(datetime.now(UTC))
    # Given a domain, make_msgid does no DNS lookup (its default, socket.getfqdn(), can block).
    domain = header_safe(parseaddr(sender)[1].rpartition("@")[2]) or header_safe(socket.gethostname()) or "localhost"
    message["Message-ID"] = make_msgid("skyline", domain=domain)
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(markup, subtype="html", cte="quoted-printable")
    return message


def send_mail(settings: Settings, sender: str, to: list[str], message: EmailMessage) -> None:
    """Deliver through SMTP_HOST:SMTP_PORT, one envelope recipient each.

    SMTPS when ``SMTP_SSL``, else STARTTLS when ``SMTP_STARTTLS``; the server's certificate and host name
    are verified against the system's CA store. AUTH when ``SMTP_USER`` is set.
    """
    timeout = float(settings.ALERT_TIMEOUT)
    context = ssl.create_default_context()
    host, port = settings.SMTP_HOST, int(settings.SMTP_PORT)
    if settings.SMTP_SSL:
        connection: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(host, port, timeout=timeout)
    with connection as smtp:
        if settings.SMTP_STARTTLS and not settings.SMTP_SSL:
            smtp.starttls(context=context)
        if settings.SMTP_USER:
            smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
        refused = smtp.send_message(message, sender, to)
    if refused:
        log.warning("smtp alerter :: the server refused %s", ", ".join(sorted(refused)))


def _graphite_image(settings: Settings, link: str | None, base: str) -> bytes | None:
    """The Graphite render PNG, or None (logged) when it cannot be fetched or is not a PNG."""
    if link is None:
        return None
    timeout = min(float(settings.ALERT_TIMEOUT),
                  float(settings.GRAPHITE_CONNECT_TIMEOUT + settings.GRAPHITE_READ_TIMEOUT))
    try:
        data = get_bytes(link, timeout, GRAPHITE_IMAGE_LIMIT)
    except Exception as exc:
        log.warning("smtp alerter :: no Graphite image for %s: %s", excerpt.escape(base), excerpt.escape(str(exc)))
        return None
    if not data.startswith(PNG_SIGNATURE):
        log.warning("smtp alerter :: no Graphite image for %s: the answer is not a PNG (%s)",
                    excerpt.escape(base), excerpt.describe(data[:16]))
        return None
    return data


def _plot(redis: Any, settings: Settings, anomaly: Anomaly, base: str, context: str,
          derivative: bool) -> tuple[bytes, plot.SeriesStats, str] | None:
    """``(PNG, statistics, window)`` of the Redis data, or None (logged) when there is no data or it cannot
    be drawn: the mail goes anyway."""
    pairs = plot.redis_series(redis, settings, base, derivative)
    if not pairs:
        return None
    first, last = float(pairs[0][0]), float(pairs[-1][0])
    title = plot.title(context, base, anomaly.value, first, last, derivative)
    try:
        png, figures = plot.render(pairs, title, (anomaly.timestamp, anomaly.value), derivative)
    except Exception:
        log.exception("error :: smtp alerter :: cannot plot %s", excerpt.escape(base))
        return None
    return png, figures, plot.window(first, last)


def _graphite_section(link: str, cid: str, fetched: bool, embed: bool) -> tuple[list[str], list[str]]:
    """The Graphite graph's lines in the text and the HTML part.

    An ``<img>`` only of an image that is in the mail (``fetched``), or, with embed-images off, of the
    render link itself (the mail client loads it, as v1.2.8 had it); a fetch that failed leaves a link.
    """
    href = html.escape(link)
    if fetched:
        return [f"Graphite graph: {link}"], [
            "<h3><b>Graphite data at FULL_DURATION (may be aggregated)</b></h3>",
            f'<a href="{href}"><img src="cid:{cid}" alt="Graphite graph"/></a><br>']
    if embed:
        return [f"Graphite graph (the image could not be fetched): {link}"], [
            "<h3><b>Graphite data at FULL_DURATION</b></h3>",
            f'The Graphite image could not be fetched: <a href="{href}">open the graph in Graphite</a><br>']
    return [f"Graphite graph: {link}"], [
        "<h3><b>Graphite data at FULL_DURATION</b></h3>", f'<a href="{href}"><img src="{href}"/></a><br>']


def build_message(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any,
                  sender: str, to: list[str]) -> EmailMessage:
    """The alert mail: the facts as text and as HTML, the plot and the Graphite image inline in the HTML.

    The metric name is HTML-escaped in the HTML part, escaped and bounded in the Subject and the text part,
    and reduced to :func:`header_safe` in the images' Content-ID and file names.
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
    cid = header_safe(base)
    at = datetime.fromtimestamp(int(anomaly.timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S")
    facts = [
        ("Anomalous value", f"{anomaly.value}"),
        ("Anomaly timestamp", f"{int(anomaly.timestamp)}"),
        ("Anomalous at", f"{at} UTC"),
        ("At hours", f"{hours_shown}"),
        ("Next alert in", f"{rule.expiration} seconds"),
        ("Triggered algorithms", ", ".join(anomaly.triggered) if anomaly.triggered else "none reported"),
    ]
    if anomaly.second_stage_reason() is not None:
        facts.append(("Second stage", anomaly.second_stage_reason()))
    if derivative:
        facts.append(("Derivative graph", "True"))
    text = [f"Skyline {context} alert", "", f"metric: {excerpt.escape(base, NAME_LIMIT)}"]
    text += [f"{label}: {value}" for label, value in facts]
    markup = [f"<h3>{SKYLINE_HEADING} {html.escape(context)} alert</h3>", f"metric: <b>{html.escape(base)}</b><br>"]
    markup += [f"{label}: {html.escape(value)}<br>" for label, value in facts]
    if redis_plot is not None:
        figures, window = redis_plot[1], redis_plot[2]
        summary = [f"min: {figures.minimum:.2f} | max: {figures.maximum:.2f} | mean: {figures.mean:.2f}",
                   f"3-sigma: {figures.three_sigma:.2f}",
                   f"3-sigma upper bound: {figures.upper:.2f} | 3-sigma lower bound: {figures.lower:.2f}"]
        text += ["", *summary, f"Redis data plot (in the HTML part): {window}"]
        markup += ["<br>", *(f"{line}<br>" for line in summary), f"<h3><b>Redis data, {html.escape(window)}</b></h3>",
                   f'<img src="cid:redis.{cid}" alt="Redis data plot"/><br>']
    text.append("")
    if link is not None:
        more_text, more_markup = _graphite_section(link, cid, graphite_png is not None, embed)
        text += more_text
        markup += more_markup
    if embed and not settings.PLOT_REDIS_DATA:
        text.append("Set PLOT_REDIS_DATA = True to attach a plot of the Redis data.")
        markup.append("<br>Set PLOT_REDIS_DATA = True to attach a plot of the Redis data.<br>")
    text.append(f"Skyline version :: {__version__}")
    markup.append(f'<p align="right"><font size="1">Skyline version :: {__version__}</font></p>')
    subject = f"[Skyline alert] - {context} ALERT - {excerpt.escape(base, NAME_LIMIT)}"
    message = compose(subject, sender, to, "\n".join(text) + "\n",
                      "<html><body>\n" + "\n".join(markup) + "\n</body></html>\n")
    body = message.get_body(("html",))
    if redis_plot is not None:
        body.add_related(redis_plot[0], "image", "png", cid=f"<redis.{cid}>", disposition="inline",
                         filename=f"{cid}.redis.plot.png")
    if graphite_png is not None:
        body.add_related(graphite_png, "image", "png", cid=f"<{cid}>", disposition="inline",
                         filename=f"{cid}.graphite.{hours_shown}h.png")
    return message


def alert(rule: AlertRule, anomaly: Anomaly, context: str, settings: Settings, redis: Any) -> None:
    """Build and send the alert mail; raises when there are no recipients or the SMTP exchange fails."""
    sender, to = recipients(settings, rule)
    send_mail(settings, sender, to, build_message(rule, anomaly, context, settings, redis, sender, to))
