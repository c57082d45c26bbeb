"""End to end: an Analyzer run over a real Redis with one spiking metric mails the alert to aiosmtpd."""

from __future__ import annotations

import time

import pytest

from skyline_analyzer import synthetic
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.harness import seed_redis
from skyline_analyzer.systemd import Notifier
from tests.alert_receivers import HangingServer, SmtpReceiver
from tests.support import NotifyReceiver

SPIKING = "shop.checkout.latency"


@pytest.fixture
def seeded(redis_conn):
    end = int(time.time())
    metrics = {
        SPIKING: synthetic.make_series("noisy", end, points=300, seed=1, spike=True),
        "shop.cart.latency": synthetic.make_series("noisy", end, points=300, seed=2),
        "shop.search.latency": synthetic.make_series("seasonal", end, points=300, seed=3),
    }
    seed_redis(redis_conn, metrics, "metrics.")
    return metrics


@pytest.fixture
def daemon_settings(load_settings, tmp_path):
    def build(smtp_port, **overrides):
        values = {
            "ALERTS": [("shop", "smtp", 600)],
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp_port,
            "SMTP_OPTS": {"sender": "skyline@example.org", "recipients": {"shop": ["shop-oncall@example.org"]},
                          "embed-images": True},
            "ALERT_ON_STALE_METRICS": False,
            "ANOMALY_DUMP": str(tmp_path / "anomalies.json"),
            **overrides,
        }
        return load_settings(**values)

    return build


def test_a_daemon_run_mails_the_spiking_metric(daemon_settings, seeded, redis_conn):
    with SmtpReceiver() as smtp:
        analyzer = Analyzer(daemon_settings(smtp.port))
        report = analyzer.run_once()
        assert [a.base_name for a in report.anomalies] == [SPIKING]
        [mail] = smtp.wait_for(1)
        assert mail.recipients == ["shop-oncall@example.org"]
        assert mail.message["Subject"] == f"[Skyline alert] - Analyzer ALERT - {SPIKING}"
        body = "".join(p.get_payload(decode=True).decode() for p in mail.message.walk()
                       if p.get_content_type() == "text/html")
        assert f"Anomalous value: {seeded[SPIKING][-1][1]}" in body
        for algorithm in report.anomalies[0].triggered:
            assert algorithm in body
        [png] = [p for p in mail.message.walk() if p.get_content_type() == "image/png"]
        assert png.get_payload(decode=True).startswith(b"\x89PNG")
        # The next run is inside EXPIRATION_TIME: still anomalous, no second mail.
        assert [a.base_name for a in analyzer.run_once().anomalies] == [SPIKING]
        time.sleep(0.2)
        assert len(smtp.mails) == 1
        analyzer.link.close()


def test_a_hanging_mail_server_costs_the_run_its_timeout_only(daemon_settings, seeded, redis_conn):
    with HangingServer() as stuck:
        analyzer = Analyzer(daemon_settings(stuck.port, ALERT_TIMEOUT=1.0))
        started = time.monotonic()
        report = analyzer.run_once()
        elapsed = time.monotonic() - started
        analyzer.link.close()
    assert [a.base_name for a in report.anomalies] == [SPIKING]
    assert elapsed < 1.0 + 1.0 + 3.0  # the timeout, the dispatch grace, and the run itself
    assert redis_conn.keys("last_alert.*") == []


def test_the_watchdog_is_pinged_while_the_run_waits_on_a_hung_mail_server(daemon_settings, seeded, redis_conn):
    # WatchdogSec=2 s, so a ping every second; the one alert waits ALERT_TIMEOUT=3 s for a greeting that
    # never comes. Without pings during dispatch the gap would be over 3 s.
    with HangingServer() as stuck, NotifyReceiver() as notify:
        analyzer = Analyzer(daemon_settings(stuck.port, ALERT_TIMEOUT=3.0), Notifier(notify.environ(2_000_000)))
        started = time.monotonic()
        report = analyzer.run_once()
        ended = time.monotonic()
        analyzer.link.close()
        time.sleep(0.1)
        pings = [when for when in notify.pings() if started <= when <= ended]
        assert len(pings) >= 3
        # From the first ping of the run (the workers' supervision) to its end.
        assert notify.longest_silence(pings[0], ended) < 2.0
    assert [a.base_name for a in report.anomalies] == [SPIKING]
    assert ended - started > 3.0
