"""The smtp alerter and the stale digest against a real aiosmtpd server and a real Redis."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import msgpack
import pytest
from PIL import Image

from skyline_analyzer import codec
from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.alerting import stale
from skyline_analyzer.alerting.alerters import smtp as smtp_alerter
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.systemd import Notifier
from tests.alert_receivers import HangingServer, HttpReceiver, SmtpReceiver
from tests.support import NotifyReceiver, free_port

NOW = 1_700_000_000
BASE = "stats.requests"
OPTS = {"sender": "skyline@example.org",
        "recipients": {"stats": ["ops@example.org", "dev@example.org", "ops@example.org", "boss@example.org"]},
        "default_recipient": ["fallback@example.org", "second@example.org"],
        "embed-images": True}


@pytest.fixture
def smtp():
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def load(load_settings):
    def build(port, **overrides):
        values = {"ALERTS": [("stats", "smtp", 60)], "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port,
                  "SMTP_OPTS": OPTS, "ALERT_TIMEOUT": 2.0, "IONOSPHERE_ENABLED": False, **overrides}
        return load_settings(**values)

    return build


def seed(redis_conn, base=BASE, spike=500.0, minutes=60):
    pairs = [(NOW - 60 * minutes + 60 * i, 10.0 + (i % 7)) for i in range(minutes)] + [(NOW, spike)]
    redis_conn.set(f"metrics.{base}", codec.encode(pairs))
    return Anomaly(spike, base, NOW, ("grubbs", "histogram_bins", "stddev_from_average"))


def parts(mail):
    return list(mail.message.walk())[1:]


def html_of(mail):
    """The HTML part, its line ends as written (SMTP carries them as CRLF)."""
    return "".join(p.get_content().replace("\r\n", "\n") for p in parts(mail) if p.get_content_type() == "text/html")


def text_of(mail):
    return mail.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def images(mail):
    return [p for p in parts(mail) if p.get_content_maintype() == "image"]


def assert_dated_and_identified(message, domain):
    """A Date within a minute of now (the send time, not the anomaly's) and a Message-ID in ``domain``."""
    assert abs((parsedate_to_datetime(message["Date"]) - datetime.now(UTC)).total_seconds()) < 60
    assert re.fullmatch(rf"<[^<>@\s]+@{re.escape(domain)}>", message["Message-ID"]), message["Message-ID"]


def test_anomalous_metric_mail_with_the_redis_plot(load, smtp, redis_conn):
    settings = load(smtp.port)
    anomaly = seed(redis_conn)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    [mail] = smtp.wait_for(1)
    # FIX R3: one envelope address per distinct recipient; FIX R2: sent with IONOSPHERE_ENABLED False.
    assert mail.recipients == ["ops@example.org", "dev@example.org", "boss@example.org"]
    assert mail.sender == "skyline@example.org"
    message = mail.message
    assert message["Subject"] == "[Skyline alert] - Analyzer ALERT - stats.requests"
    assert message["To"] == "ops@example.org"
    assert message["Cc"] == "dev@example.org, boss@example.org"
    assert_dated_and_identified(message, "example.org")
    # text/plain and its HTML alternative; the plot is inline in the HTML part.
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    assert [p.get_content_type() for p in related.get_payload()] == ["text/html", "image/png"]
    assert [p.get_content_type() for p in parts(mail)].count("text/html") == 1
    words = text_of(mail)
    assert "metric: stats.requests\nAnomalous value: 500.0\n" in words
    assert "Triggered algorithms: grubbs, histogram_bins, stddev_from_average\n" in words
    assert "Redis data plot (in the HTML part): 1 hour to 2023-11-14 22:13:20 UTC" in words
    text = html_of(mail)
    assert "metric: <b>stats.requests</b>" in text
    assert "Anomalous value: 500.0" in text
    assert f"Anomaly timestamp: {NOW}" in text
    assert "Anomalous at: 2023-11-14 22:13:20 UTC" in text
    assert "Next alert in: 60 seconds" in text
    assert "Triggered algorithms: grubbs, histogram_bins, stddev_from_average" in text
    assert "Derivative graph" not in text
    assert "<h3><b>Redis data, 1 hour to 2023-11-14 22:13:20 UTC</b></h3>" in text
    assert '<img src="cid:redis.stats.requests" alt="Redis data plot"/>' in text
    [image] = images(mail)
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<redis.stats.requests>"
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "stats.requests.redis.plot.png"
    with Image.open(io.BytesIO(image.get_payload(decode=True))) as png:
        png.load()
        assert (png.format, png.size) == ("PNG", (800, 400))
        assert png.info["Title"] == ("Skyline Analyzer - ALERT - Redis data, 1 hour to 2023-11-14 22:13:20 UTC\n"
                                     "stats.requests - anomalous value: 500.0")
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable"
               for p in parts(mail) if p.get_content_maintype() == "text")
    assert msgpack.unpackb(redis_conn.get("last_alert.smtp.stats.requests")) == 500.0


def test_the_plot_and_the_mail_state_the_window_the_data_covers(load, smtp, redis_conn):
    # 16 minutes of data with FULL_DURATION at 24 hours: the plot says 16 minutes, v1.2.8 said "at 24 hours".
    settings = load(smtp.port)
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn, minutes=16)], NOW)
    [mail] = smtp.wait_for(1)
    [image] = images(mail)
    with Image.open(io.BytesIO(image.get_payload(decode=True))) as png:
        assert png.info["Title"].startswith(
            "Skyline Analyzer - ALERT - Redis data, 16 minutes to 2023-11-14 22:13:20 UTC\n")
    assert "<h3><b>Redis data, 16 minutes to 2023-11-14 22:13:20 UTC</b></h3>" in html_of(mail)
    assert "Redis data plot (in the HTML part): 16 minutes to 2023-11-14 22:13:20 UTC" in text_of(mail)
    # The analysis window is still stated as such.
    assert "At hours: 24" in text_of(mail)


def test_every_mail_has_its_own_message_id(load, smtp, redis_conn):
    settings = load(smtp.port)
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn, "stats.a"), seed(redis_conn, "stats.b")], NOW)
    mails = smtp.wait_for(2)
    assert len({mail.message["Message-ID"] for mail in mails}) == 2


def test_second_run_inside_expiration_time_sends_nothing(load, smtp, redis_conn):
    settings = load(smtp.port)
    anomaly = seed(redis_conn)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW + 60)
    time.sleep(0.2)
    assert len(smtp.mails) == 1


def test_derivative_metric_is_titled_as_such(load, smtp, redis_conn):
    settings = load(smtp.port)
    anomaly = seed(redis_conn)
    redis_conn.sadd("derivative_metrics", f"metrics.{BASE}")
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    [mail] = smtp.wait_for(1)
    assert "Derivative graph: True" in html_of(mail)
    assert "Derivative graph: True" in text_of(mail)
    with Image.open(io.BytesIO(images(mail)[0].get_payload(decode=True))) as png:
        assert png.info["Title"].startswith("Skyline Analyzer - ALERT - Redis data (derivative graph), ")


def test_default_recipient_when_the_pattern_has_none(load, smtp, redis_conn):
    settings = load(smtp.port, ALERTS=[("stats.req", "smtp", 60)])
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["fallback@example.org", "second@example.org"]


def test_no_recipient_at_all_fails_and_leaves_the_key_unset(load, smtp, redis_conn, caplog):
    settings = load(smtp.port, ALERTS=[("stats.req", "smtp", 60)],
                    SMTP_OPTS={"sender": "s@example.org", "recipients": {}})
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
    assert "no SMTP_OPTS recipients for 'stats.req'" in caplog.text
    assert smtp.mails == []
    assert not redis_conn.exists("last_alert.smtp.stats.requests")


def test_email_address_alerter_fix_r1(load, smtp, redis_conn):
    settings = load(smtp.port, ALERTS=[("stats", "oncall@example.org", 60)])
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
    [mail] = smtp.wait_for(1)
    assert (mail.sender, mail.recipients) == ("skyline@example.org", ["oncall@example.org"])
    assert redis_conn.exists("last_alert.oncall@example.org.stats.requests")


def test_without_embedded_images_the_mail_has_no_attachment(load, smtp, redis_conn):
    settings = load(smtp.port, SMTP_OPTS={**OPTS, "embed-images": False})
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
    [mail] = smtp.wait_for(1)
    assert [p.get_content_type() for p in parts(mail)] == ["text/plain", "text/html"]
    assert "<img" not in html_of(mail)


def test_graphite_image_is_fetched_and_embedded(load, smtp, redis_conn):
    fake_png = b"\x89PNG\r\n\x1a\n" + b"graphite" * 10
    with HttpReceiver(reply=fake_png, content_type="image/png") as graphite:
        port = graphite.url.rsplit(":", 1)[1]
        settings = load(smtp.port, GRAPHITE_HOST="127.0.0.1", GRAPHITE_PORT=port, PLOT_REDIS_DATA=False)
        alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
        [request] = graphite.requests
    query = parse_qs(urlsplit(request.path).query)
    assert urlsplit(request.path).path == "/render/"
    assert query["target"] == ["cactiStyle(stats.requests)"]
    assert query["title"] == ["Skyline Analyzer - ALERT at 24 hours - 500.0"]
    assert query["colorList"] == ["orange"]
    assert query["until"] == [time.strftime("%H:%M_%Y%m%d", time.localtime(NOW))]
    assert query["from"] == [time.strftime("%H:%M_%Y%m%d", time.localtime(NOW - 86400))]
    [mail] = smtp.wait_for(1)
    [image] = images(mail)
    assert image["Content-ID"] == "<stats.requests>"
    assert image.get_filename() == "stats.requests.graphite.24h.png"
    assert image.get_payload(decode=True) == fake_png
    text = html_of(mail)
    assert '<img src="cid:stats.requests" alt="Graphite graph"/>' in text
    assert f'<a href="{GRAPHITE_LINK_START}{port}/render/?from=' in text
    assert "Set PLOT_REDIS_DATA = True" in text
    assert f"Graphite graph: http://127.0.0.1:{port}/render/?from=" in text_of(mail)


GRAPHITE_LINK_START = "http://127.0.0.1:"


TOO_LARGE = b"\x89PNG\r\n\x1a\n" + bytes(smtp_alerter.GRAPHITE_IMAGE_LIMIT)


@pytest.mark.parametrize("answer", ["500", "not a png", "closed port", "too large"])
def test_a_graphite_image_that_could_not_be_fetched_is_linked_not_shown(load, smtp, redis_conn, caplog, answer):
    reply = TOO_LARGE if answer == "too large" else b"<html>oops</html>"
    with HttpReceiver(status=500 if answer == "500" else 200, reply=reply, content_type="text/html") as graphite:
        port = free_port() if answer == "closed port" else int(graphite.url.rsplit(":", 1)[1])
        settings = load(smtp.port, GRAPHITE_HOST="127.0.0.1", GRAPHITE_PORT=str(port))
        alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
        [mail] = smtp.wait_for(1)
    text = html_of(mail)
    # The Redis plot is the only image, in the mail and in the HTML; Graphite is a link.
    assert [image["Content-ID"] for image in images(mail)] == ["<redis.stats.requests>"]
    assert re.findall(r'<img src="([^"]*)"', text) == ["cid:redis.stats.requests"]
    assert f'The Graphite image could not be fetched: <a href="{GRAPHITE_LINK_START}{port}/render/?from=' in text
    assert f"Graphite graph (the image could not be fetched): http://127.0.0.1:{port}/render/" in text_of(mail)
    assert "smtp alerter :: no Graphite image for stats.requests" in caplog.text
    assert redis_conn.exists("last_alert.smtp.stats.requests")


def test_without_embedded_images_the_graphite_image_is_the_render_link(load, smtp, redis_conn):
    settings = load(smtp.port, GRAPHITE_HOST="graphite.example.org", SMTP_OPTS={**OPTS, "embed-images": False})
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn)], NOW)
    [mail] = smtp.wait_for(1)
    [link] = re.findall(r'<img src="([^"]*)"', html_of(mail))
    assert link.startswith("http://graphite.example.org:80/render/?from=")
    assert images(mail) == []


def test_hanging_smtp_server_costs_at_most_the_timeout(load, redis_conn):
    with HangingServer() as stuck:
        settings = load(stuck.port, ALERT_TIMEOUT=1.0)
        anomalies = [seed(redis_conn, f"stats.m{i}") for i in range(3)]
        started = time.monotonic()
        alerts.send_alerts(redis_conn, settings, anomalies, NOW)
        elapsed = time.monotonic() - started
    # Three alerts run concurrently: about one timeout, not three.
    assert elapsed < 2.5
    assert redis_conn.keys("last_alert.*") == []


def test_hung_smtp_server_dispatch_keeps_the_watchdog_fed_and_stops_at_the_budget(load, redis_conn):
    # WatchdogSec=1 s: a ping every 0.5 s. Six alerts one at a time against a server that accepts and never
    # answers would take 6 timeouts; ALERT_DISPATCH_TIMEOUT ends the wait at 3 s.
    with HangingServer() as stuck, NotifyReceiver() as notify:
        settings = load(stuck.port, ALERT_TIMEOUT=1.0, ALERT_CONCURRENCY=1, ALERT_DISPATCH_TIMEOUT=3.0)
        jobs, _ = alerts.plan_alerts(redis_conn, settings, [seed(redis_conn, f"stats.m{i}") for i in range(6)])
        started = time.monotonic()
        results = alerts.dispatch(jobs, settings, redis_conn, Notifier(notify.environ(1_000_000)))
        ended = time.monotonic()
        time.sleep(0.1)
        assert notify.longest_silence(started, ended) < 1.0
    assert 3.0 <= ended - started < 3.5
    assert alerts.Outcome.SENT not in results
    assert results.count(alerts.Outcome.TIMED_OUT) >= 3
    assert redis_conn.keys("last_alert.*") == []


def test_refusing_smtp_server_fails_fast_and_is_retried(load, smtp, redis_conn):
    anomaly = seed(redis_conn)
    started = time.monotonic()
    alerts.send_alerts(redis_conn, load(free_port()), [anomaly], NOW)
    assert time.monotonic() - started < 1.5
    assert not redis_conn.exists("last_alert.smtp.stats.requests")
    alerts.send_alerts(redis_conn, load(smtp.port), [anomaly], NOW + 60)
    assert len(smtp.wait_for(1)) == 1


# --- the stale digest -------------------------------------------------------------------------------


def test_stale_digest_mails_new_stale_metrics_once(load, smtp, redis_conn):
    settings = load(smtp.port, STALE_PERIOD=500)
    redis_conn.sadd("analyzer.alert_on_stale_metrics", "metrics.b.stale", "metrics.a.stale",
                    "metrics.donot_alert_on_stale.metric_known_to_go_stale")
    stale.send_stale_digest(redis_conn, settings, NOW)
    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["fallback@example.org"]
    assert mail.message["Subject"] == "[Skyline alert] - Analyzer ALERT - 2 stale metrics"
    assert_dated_and_identified(mail.message, "example.org")
    assert [p.get_content_type() for p in parts(mail)] == ["text/plain", "text/html"]
    text = html_of(mail)
    assert "Stale metrics (no data sent for ~300 seconds):<br>a.stale<br>\nb.stale<br>\n" in text
    assert "Stale metrics (no data sent for ~300 seconds):\na.stale\nb.stale\n" in text_of(mail)
    assert redis_conn.get("last_alert.stale.a.stale") == msgpack.packb(NOW)
    assert 495 <= redis_conn.ttl("last_alert.stale.b.stale") <= 500
    assert not redis_conn.exists("last_alert.stale.donot_alert_on_stale.metric_known_to_go_stale")

    stale.send_stale_digest(redis_conn, settings, NOW + 60)
    time.sleep(0.2)
    assert len(smtp.mails) == 1
    redis_conn.sadd("analyzer.alert_on_stale_metrics", "metrics.c.stale")
    stale.send_stale_digest(redis_conn, settings, NOW + 120)
    assert len(smtp.wait_for(2)) == 2
    assert "1 stale metrics" in smtp.mails[1].message["Subject"]
    assert "c.stale" in html_of(smtp.mails[1]) and "a.stale" not in html_of(smtp.mails[1])


def test_failed_stale_digest_is_retried_next_run(load, smtp, redis_conn):
    redis_conn.sadd("analyzer.alert_on_stale_metrics", "metrics.a.stale")
    stale.send_stale_digest(redis_conn, load(free_port()), NOW)
    assert not redis_conn.exists("last_alert.stale.a.stale")
    stale.send_stale_digest(redis_conn, load(smtp.port), NOW + 60)
    assert len(smtp.wait_for(1)) == 1


def test_empty_stale_set_sends_nothing(load, smtp, redis_conn):
    stale.send_stale_digest(redis_conn, load(smtp.port), NOW)
    time.sleep(0.1)
    assert smtp.mails == []


# --- names in mail ----------------------------------------------------------------------------------


HOSTILE = "stats.evil\r\nBcc: victim@example.org\r\n<script>$x^{</script>"


def test_a_hostile_name_is_escaped_in_every_part_of_the_mail(load, smtp, redis_conn):
    settings = load(smtp.port)
    alerts.send_alerts(redis_conn, settings, [seed(redis_conn, HOSTILE)], NOW)
    [mail] = smtp.wait_for(1)
    assert mail.recipients == ["ops@example.org", "dev@example.org", "boss@example.org"]
    assert mail.message["Bcc"] is None
    assert mail.message["Subject"] == (
        "[Skyline alert] - Analyzer ALERT - stats.evil\\r\\nBcc: victim@example.org\\r\\n<script>$x^{</script>")
    text = html_of(mail)
    assert "metric: <b>stats.evil\nBcc: victim@example.org\n&lt;script&gt;$x^{&lt;/script&gt;</b>" in text
    assert "<script>" not in text
    escaped = "stats.evil\\r\\nBcc: victim@example.org\\r\\n<script>$x^{</script>"
    assert f"metric: {escaped}\n" in text_of(mail)
    # The plot was drawn ('$' is text, not a formula) and its Content-ID keeps only safe characters.
    [image] = images(mail)
    assert image["Content-ID"] == "<redis.stats.evilBccvictimexample.orgscriptxscript>"
    assert '<img src="cid:redis.stats.evilBccvictimexample.orgscriptxscript" alt="Redis data plot"/>' in text
    assert image.get_filename() == "stats.evilBccvictimexample.orgscriptxscript.redis.plot.png"
    with Image.open(io.BytesIO(image.get_payload(decode=True))) as png:
        assert png.info["Title"].endswith(f"\n{escaped} - anomalous value: 500.0")


def test_stale_digest_escapes_names_and_skips_undecodable_members(load, smtp, redis_conn, caplog):
    settings = load(smtp.port)
    redis_conn.sadd("analyzer.alert_on_stale_metrics", "metrics.<b>bold</b>", b"metrics.\xff", "metrics.plain")
    stale.send_stale_digest(redis_conn, settings, NOW)
    [mail] = smtp.wait_for(1)
    assert "2 stale metrics" in mail.message["Subject"]
    assert ":<br>&lt;b&gt;bold&lt;/b&gt;<br>\nplain<br>" in html_of(mail)
    assert "analyzer.alert_on_stale_metrics: 1 members are not UTF-8 and were skipped" in caplog.text
