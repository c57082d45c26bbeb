"""The smtp alerter over SMTPS and STARTTLS, with AUTH, against a real aiosmtpd server with a real certificate.

The certificate is self-signed for 127.0.0.1; a test trusts it through OpenSSL's ``SSL_CERT_FILE`` (what an
operator with a private CA sets too), or leaves it untrusted to show the server is verified.
"""

from __future__ import annotations

import time

import pytest

from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.detection.anomaly import Anomaly
from tests.alert_receivers import HangingServer, SmtpReceiver, self_signed_certificate, server_tls_context

NOW = 1_700_000_000
OPTS = {"sender": "skyline@example.org", "recipients": {"stats": ["ops@example.org"]}, "embed-images": False}
ANOMALY = Anomaly(500.0, "stats.requests", NOW, ("grubbs",))
KEY = "last_alert.smtp.stats.requests"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return certificate


@pytest.fixture
def load(load_settings):
    def build(port, **overrides):
        values = {"ALERTS": [("stats", "smtp", 60)], "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port,
                  "SMTP_OPTS": OPTS, "ALERT_TIMEOUT": 2.0, **overrides}
        return load_settings(**values)

    return build


def test_smtps_delivers_over_tls(load, trusted, redis_conn):
    with SmtpReceiver(ssl_context=server_tls_context(*trusted)) as smtp:
        alerts.send_alerts(redis_conn, load(smtp.port, SMTP_SSL=True), [ANOMALY], NOW)
        [mail] = smtp.wait_for(1)
    assert mail.tls is not None and mail.tls.startswith("TLSv1.")
    assert mail.message["Subject"] == "[Skyline alert] - Analyzer ALERT - stats.requests"
    assert redis_conn.exists(KEY)


def test_smtps_with_auth(load, trusted, redis_conn):
    with SmtpReceiver(ssl_context=server_tls_context(*trusted), users={"skyline": "s3cret"}) as smtp:
        settings = load(smtp.port, SMTP_SSL=True, SMTP_USER="skyline", SMTP_PASSWORD="s3cret")
        alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
        [mail] = smtp.wait_for(1)
    assert (mail.login, mail.tls is not None) == ("skyline", True)


def test_a_wrong_password_is_a_failed_alert(load, trusted, redis_conn, caplog):
    with SmtpReceiver(ssl_context=server_tls_context(*trusted), users={"skyline": "s3cret"}) as smtp:
        settings = load(smtp.port, SMTP_SSL=True, SMTP_USER="skyline", SMTP_PASSWORD="wrong")
        alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
        time.sleep(0.2)
        assert smtp.mails == []
    assert "SMTPAuthenticationError" in caplog.text
    assert "wrong" not in caplog.text
    assert not redis_conn.exists(KEY)


def test_starttls_when_the_server_requires_it(load, trusted, redis_conn):
    receiver = SmtpReceiver(tls_context=server_tls_context(*trusted), require_starttls=True,
                            users={"skyline": "s3cret"})
    with receiver as smtp:
        settings = load(smtp.port, SMTP_STARTTLS=True, SMTP_USER="skyline", SMTP_PASSWORD="s3cret")
        alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
        [mail] = smtp.wait_for(1)
    assert mail.tls is not None and mail.login == "skyline"


def test_without_starttls_a_server_that_requires_it_refuses(load, trusted, redis_conn):
    with SmtpReceiver(tls_context=server_tls_context(*trusted), require_starttls=True) as smtp:
        alerts.send_alerts(redis_conn, load(smtp.port), [ANOMALY], NOW)
        time.sleep(0.2)
        assert smtp.mails == []
    assert not redis_conn.exists(KEY)


@pytest.mark.parametrize("mode", ["SMTP_SSL", "SMTP_STARTTLS"])
def test_an_untrusted_certificate_is_refused(load, certificate, redis_conn, caplog, mode):
    receiver = (SmtpReceiver(ssl_context=server_tls_context(*certificate)) if mode == "SMTP_SSL"
                else SmtpReceiver(tls_context=server_tls_context(*certificate)))
    with receiver as smtp:
        alerts.send_alerts(redis_conn, load(smtp.port, **{mode: True}), [ANOMALY], NOW)
        time.sleep(0.2)
        assert smtp.mails == []
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert not redis_conn.exists(KEY)


def test_a_hanging_smtps_handshake_costs_at_most_the_timeout(load, redis_conn):
    with HangingServer() as stuck:
        started = time.monotonic()
        alerts.send_alerts(redis_conn, load(stuck.port, SMTP_SSL=True, ALERT_TIMEOUT=1.0), [ANOMALY], NOW)
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert not redis_conn.exists(KEY)
