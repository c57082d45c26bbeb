"""``skyline-analyzer alert-test``: a test alert through every matching alerter, with real receivers."""

from __future__ import annotations

import pytest

from skyline_analyzer.cli import main
from tests.alert_receivers import HttpReceiver, SmtpReceiver, SyslogReceiver
from tests.support import free_port


@pytest.fixture
def receivers():
    with SyslogReceiver() as syslog, HttpReceiver() as http, SmtpReceiver() as smtp:
        yield syslog, http, smtp


def settings_for(make_settings, monkeypatch, syslog, http, smtp_port, **overrides):
    path = make_settings(**{
        "ALERTS": [("skyline_test", "smtp", 1800), ("skyline_test.alerters.test", "webhook", 1800),
                   ("skyline_test.alerters.test", "smtp", 1800), ("other", "webhook", 1800)],
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port, "ALERT_TIMEOUT": 2.0,
        "SYSLOG_OPTS": {"ident": "skytest", "address": syslog.address},
        "WEBHOOK_ENABLED": True, "WEBHOOK_OPTS": {"urls": {}, "default_urls": [f"{http.url}/hook"]},
        **overrides,
    })
    monkeypatch.setenv("SKYLINE_SETTINGS", str(path))


def test_every_matching_tuple_fires_once_and_syslog_is_added(make_settings, monkeypatch, receivers, redis_conn,
                                                             capsys):
    syslog, http, smtp = receivers
    settings_for(make_settings, monkeypatch, syslog, http, smtp.port)
    assert main(["alert-test", "--value", "42"]) == 0
    mails = smtp.wait_for(2)
    assert len(mails) == 2
    assert {m.message["Subject"] for m in mails} == {"[Skyline alert] - Analyzer ALERT - skyline_test.alerters.test"}
    assert [r.json()["value"] for r in http.requests] == [42.0]
    assert http.requests[0].json()["triggered_algorithms"] == ["alert-test"]
    [line] = syslog.lines()
    assert line.endswith("Analyzer - Anomalous metric: skyline_test.alerters.test (value: 42.0)")
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["smtp", "webhook", "smtp", "syslog"]
    assert all(line.endswith("sent") for line in out)
    # A test alert neither checks nor sets the rate-limit keys.
    assert redis_conn.keys("last_alert.*") == []


def test_failures_are_reported_with_exit_status_1(make_settings, monkeypatch, receivers, capsys):
    syslog, http, _ = receivers
    settings_for(make_settings, monkeypatch, syslog, http, free_port(), SYSLOG_ENABLED=False)
    assert main(["alert-test", "other.metric"]) == 0
    assert main(["alert-test", "skyline_test.x"]) == 1
    out = capsys.readouterr().out
    assert "'skyline_test'" in out and "FAILED" in out


def test_nothing_matches(make_settings, monkeypatch, receivers, capsys):
    syslog, http, smtp = receivers
    settings_for(make_settings, monkeypatch, syslog, http, smtp.port, SYSLOG_ENABLED=False)
    assert main(["alert-test", "nothing.here"]) == 1
    assert "no ALERTS tuple matches 'nothing.here'" in capsys.readouterr().err


def test_disabled_and_unknown_alerters_are_told_apart(make_settings, monkeypatch, receivers, capsys):
    syslog, http, smtp = receivers
    settings_for(make_settings, monkeypatch, syslog, http, smtp.port, WEBHOOK_ENABLED=False)
    assert main(["alert-test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["smtp", "webhook", "smtp", "syslog"]
    assert out[1].endswith("disabled (not sent)")
    assert http.requests == []

    settings_for(make_settings, monkeypatch, syslog, http, smtp.port, SYSLOG_ENABLED=False,
                 ALERTS=[("skyline_test", "smtp", 60), ("skyline_test", "hipchat", 60)])
    assert main(["alert-test"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("sent") and out[1].startswith("hipchat") and out[1].endswith("UNKNOWN alerter (not sent)")
