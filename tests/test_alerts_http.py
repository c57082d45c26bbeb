"""The slack, pagerduty and webhook alerters against a real local HTTP server, field by field."""

from __future__ import annotations

import json
import socket
import time

import msgpack
import numpy as np
import pytest

from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.detection.anomaly import Anomaly
from tests.alert_receivers import HangingServer, HttpReceiver
from tests.support import free_port

NOW = 1_700_000_000
# Settings validation wants slack tuples after an smtp tuple when SLACK_ENABLED (docs/alerts.md#alerters).
SMTP_FIRST = ("never.matches.this", "smtp", 60)
ANOMALY = Anomaly(500.0, "stats.requests", NOW, ("grubbs", "ks_test"))


@pytest.fixture
def receiver():
    with HttpReceiver(reply=b'{"ok": true}', content_type="application/json") as server:
        yield server


@pytest.fixture
def load(load_settings):
    def build(url, alert_tuples, **overrides):
        values = {
            "ALERTS": alert_tuples,
            "ALERT_TIMEOUT": 2.0,
            "SLACK_ENABLED": True,
            "SLACK_OPTS": {"bot_user_oauth_access_token": "xoxb-test", "icon_emoji": ":fire:", "webhook_url": "",
                           "channels": {"stats": ("#ops", "#dev")}, "api_url": f"{url}/api"},
            "PAGERDUTY_ENABLED": True,
            "PAGERDUTY_OPTS": {"routing_key": "R0UT1NG", "events_url": f"{url}/v2/enqueue", "severity": "warning"},
            "WEBHOOK_ENABLED": True,
            "WEBHOOK_OPTS": {"urls": {"stats": [f"{url}/hook/a", f"{url}/hook/b"]}, "default_urls": [],
                             "headers": {"X-Token": "s3cret"}},
            **overrides,
        }
        return load_settings(**values)

    return build


def test_slack_bot_token_posts_to_every_channel(load, receiver, redis_conn):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", "slack", 60)])
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    assert [r.path for r in receiver.requests] == ["/api/chat.postMessage"] * 2
    first, second = receiver.requests
    assert first.headers["Authorization"] == "Bearer xoxb-test"
    assert first.headers["Content-Type"].startswith("application/json")
    assert first.json() == {
        "channel": "#ops",
        "text": "*Skyline Analyzer - ALERT* on stats.requests at 24 hours - 500.0\n"
                "*Triggered algorithms* :: grubbs, ks_test",
        "icon_emoji": ":fire:",
    }
    assert second.json()["channel"] == "#dev"
    assert redis_conn.exists("last_alert.slack.stats.requests")


def test_slack_links_graphite_without_port_when_the_port_is_empty(load, receiver, redis_conn):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", "slack", 60)], GRAPHITE_HOST="graphite.example",
                    GRAPHITE_PORT="")
    redis_conn.sadd("derivative_metrics", "metrics.stats.requests")
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    body = receiver.requests[0].json()["text"]
    assert body.startswith("*Skyline Analyzer - ALERT* on stats.requests at 24 hours - derivative graph - 500.0 :: "
                           "<http://graphite.example/render/?from=")
    assert "&target=cactiStyle(nonNegativeDerivative(stats.requests))&width=588" in body
    assert "&title=Skyline%20Analyzer%20-%20ALERT%20at%2024%20hours%20-%20derivative%20graph%20-%20500.0" in body
    assert body.split("\n")[0].endswith("&colorList=orange|graphite image link>")


def test_slack_api_error_fails_the_alert(load, redis_conn, caplog):
    with HttpReceiver(reply=b'{"ok": false, "error": "channel_not_found"}') as server:
        settings = load(server.url, [SMTP_FIRST, ("stats", "slack", 60)])
        alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    assert "#ops: channel_not_found" in caplog.text
    assert not redis_conn.exists("last_alert.slack.stats.requests")


def test_slack_incoming_webhook(load, receiver, redis_conn):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", "slack", 60)],
                    SLACK_OPTS={"webhook_url": f"{receiver.url}/services/T/B/X"})
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    [request] = receiver.requests
    assert request.path == "/services/T/B/X"
    assert "Authorization" not in request.headers
    assert request.json() == {"text": "*Skyline Analyzer - ALERT* on stats.requests at 24 hours - 500.0\n"
                                      "*Triggered algorithms* :: grubbs, ks_test",
                              "icon_emoji": ":chart_with_upwards_trend:", "username": "Skyline"}


def test_pagerduty_events_v2_trigger(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats", "pagerduty", 60)])
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    [request] = receiver.requests
    assert request.path == "/v2/enqueue"
    event = request.json()
    assert event["routing_key"] == "R0UT1NG"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "skyline.analyzer.stats.requests"
    assert event["client"] == "Skyline"
    assert event["client_url"] == "https://skyline.example.com"
    assert event["payload"] == {
        "summary": "Analyzer alert - 500.0 - stats.requests",
        "source": socket.gethostname(),
        "severity": "warning",
        "timestamp": "2023-11-14T22:13:20+00:00",
        "component": "stats.requests",
        "group": "Analyzer",
        "class": "anomaly",
        "custom_details": {"metric": "stats.requests", "value": 500.0, "metric_timestamp": NOW,
                           "triggered_algorithms": ["grubbs", "ks_test"], "alert_pattern": "stats"},
    }


def test_pagerduty_falls_back_to_the_legacy_key(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats", "pagerduty", 60)],
                    PAGERDUTY_OPTS={"key": "LEGACY", "events_url": f"{receiver.url}/v2/enqueue"})
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    event = receiver.requests[0].json()
    assert event["routing_key"] == "LEGACY"
    assert event["payload"]["severity"] == "error"


def test_webhook_posts_the_document_to_each_url(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats", "webhook", 90, 168)])
    alerts.send_alerts(redis_conn, settings, [Anomaly(7, "stats.requests", NOW, ("grubbs",))], NOW)
    assert [r.path for r in receiver.requests] == ["/hook/a", "/hook/b"]
    request = receiver.requests[0]
    assert request.headers["X-Token"] == "s3cret"
    assert request.json() == {
        "metric": "stats.requests",
        "value": 7,
        "timestamp": NOW,
        "anomalous_at": "2023-11-14T22:13:20+00:00",
        "triggered_algorithms": ["grubbs"],
        "context": "Analyzer",
        "derivative": False,
        "full_duration": 86400,
        "alert": {"pattern": "stats", "alerter": "webhook", "expiration_time": 90,
                  "second_order_resolution_hours": 168},
        "graph_url": None,
        "source": "skyline-analyzer",
        "version": "0.1.0",
    }
    assert receiver.requests[1].body == request.body


def test_webhook_default_urls_and_a_single_string(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats.req", "webhook", 60)],
                    WEBHOOK_OPTS={"urls": {"other": f"{receiver.url}/x"}, "default_urls": f"{receiver.url}/default"})
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    assert [r.path for r in receiver.requests] == ["/default"]


def test_webhook_server_error_is_retried_next_run(load, redis_conn, caplog):
    with HttpReceiver(status=500, reply=b"boom") as failing:
        alerts.send_alerts(redis_conn, load(failing.url, [("stats", "webhook", 60)]), [ANOMALY], NOW)
        assert len(failing.requests) == 2
    assert "HTTP Error 500" in caplog.text
    assert not redis_conn.exists("last_alert.webhook.stats.requests")
    with HttpReceiver() as working:
        alerts.send_alerts(redis_conn, load(working.url, [("stats", "webhook", 60)]), [ANOMALY], NOW + 60)
        assert len(working.requests) == 2
    assert redis_conn.exists("last_alert.webhook.stats.requests")


def test_different_alerters_all_fire(load, receiver, redis_conn):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", "webhook", 60), ("stats.requests", "pagerduty", 60),
                                   ("stats", "slack", 60), ("stats", "pagerduty", 60)])
    alerts.send_alerts(redis_conn, settings, [ANOMALY], NOW)
    assert sorted(r.path for r in receiver.requests) == ["/api/chat.postMessage"] * 2 + ["/hook/a", "/hook/b",
                                                                                          "/v2/enqueue"]
    assert sorted(k.decode() for k in redis_conn.keys("last_alert.*")) == [
        "last_alert.pagerduty.stats.requests", "last_alert.slack.stats.requests", "last_alert.webhook.stats.requests"]


@pytest.mark.parametrize(("alerter", "switch"), [("webhook", "WEBHOOK_ENABLED"), ("pagerduty", "PAGERDUTY_ENABLED"),
                                                 ("slack", "SLACK_ENABLED")])
def test_disabled_alerter_sends_nothing_and_sets_the_key_as_v128(load, receiver, redis_conn, alerter, switch):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", alerter, 60)], **{switch: False})
    jobs, _ = alerts.plan_alerts(redis_conn, settings, [ANOMALY])
    assert alerts.dispatch(jobs, settings, redis_conn) == [alerts.Outcome.DISABLED]
    assert receiver.requests == []
    assert redis_conn.exists(f"last_alert.{alerter}.stats.requests")


def test_hanging_receiver_costs_one_timeout_and_others_are_delivered(load, receiver, redis_conn):
    with HangingServer() as stuck:
        settings = load(receiver.url, [("stats", "webhook", 60), ("stats", "pagerduty", 60)], ALERT_TIMEOUT=1.0,
                        WEBHOOK_OPTS={"urls": {"stats": f"http://127.0.0.1:{stuck.port}/hook"}})
        anomalies = [Anomaly(i, f"stats.m{i}", NOW) for i in range(4)]
        started = time.monotonic()
        alerts.send_alerts(redis_conn, settings, anomalies, NOW)
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert len(receiver.requests) == 4
    assert sorted(k.decode() for k in redis_conn.keys("last_alert.*")) == [
        f"last_alert.pagerduty.stats.m{i}" for i in range(4)]


def test_dispatch_waves_are_each_bounded_by_the_timeout(load, redis_conn):
    with HangingServer() as stuck:
        settings = load("http://127.0.0.1:1", [("stats", "webhook", 60)], ALERT_TIMEOUT=0.5, ALERT_CONCURRENCY=1,
                        WEBHOOK_OPTS={"urls": {"stats": f"http://127.0.0.1:{stuck.port}/hook"}})
        jobs, _ = alerts.plan_alerts(redis_conn, settings, [Anomaly(i, f"stats.m{i}", NOW) for i in range(3)])
        started = time.monotonic()
        results = alerts.dispatch(jobs, settings, redis_conn)
        elapsed = time.monotonic() - started
    # One worker: three waves of one timed-out POST each.
    assert results == [alerts.Outcome.FAILED] * 3
    assert 1.4 < elapsed < 3 * 0.5 + alerts.DISPATCH_GRACE


def test_dispatch_deadline_abandons_alerts_that_overrun(load, redis_conn):
    with HangingServer() as stuck:
        hook = f"http://127.0.0.1:{stuck.port}/hook"
        # Three URLs per alert: each alert needs three timeouts, more than its wave allows.
        settings = load("http://127.0.0.1:1", [("stats", "webhook", 60)], ALERT_TIMEOUT=0.5, ALERT_CONCURRENCY=1,
                        WEBHOOK_OPTS={"urls": {"stats": [hook, hook, hook]}})
        jobs, _ = alerts.plan_alerts(redis_conn, settings, [Anomaly(i, f"stats.m{i}", NOW) for i in range(3)])
        started = time.monotonic()
        results = alerts.dispatch(jobs, settings, redis_conn)
        elapsed = time.monotonic() - started
    assert results == [alerts.Outcome.FAILED, alerts.Outcome.TIMED_OUT, alerts.Outcome.TIMED_OUT]
    assert elapsed < 3 * 0.5 + alerts.DISPATCH_GRACE + 0.3


def test_refused_receiver_fails_fast(load, redis_conn):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    alerts.send_alerts(redis_conn, load(url, [SMTP_FIRST, ("stats", "webhook", 60), ("stats", "pagerduty", 60),
                                              ("stats", "slack", 60)]), [ANOMALY], NOW)
    assert time.monotonic() - started < 1.5
    assert redis_conn.keys("last_alert.*") == []


def test_payload_values_are_plain_json(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats", "webhook", 60)])
    alerts.send_alerts(redis_conn, settings, [Anomaly(1.5e-7, "stats.requests", 1_700_000_000.5)], NOW)
    document = json.loads(receiver.requests[0].body)
    assert (document["value"], document["timestamp"]) == (1.5e-7, 1_700_000_000.5)


def test_numpy_values_are_sent_as_numbers(load, receiver, redis_conn):
    settings = load(receiver.url, [("stats", "webhook", 60)])
    alerts.send_alerts(redis_conn, settings, [Anomaly(np.int64(12), "stats.requests", np.float64(NOW))], NOW)
    document = receiver.requests[0].json()
    assert (document["value"], document["timestamp"]) == (12, NOW)
    assert msgpack.unpackb(redis_conn.get("last_alert.webhook.stats.requests")) == 12


def test_slack_escapes_the_name_and_the_graphite_link_quotes_it(load, receiver, redis_conn):
    settings = load(receiver.url, [SMTP_FIRST, ("stats", "slack", 60)], GRAPHITE_HOST="graphite.example",
                    GRAPHITE_PORT="")
    name = "stats.x|<!channel>&from=0#"
    alerts.send_alerts(redis_conn, settings, [Anomaly(1.0, name, NOW)], NOW)
    body = receiver.requests[0].json()["text"]
    assert body.startswith("*Skyline Analyzer - ALERT* on stats.x|&lt;!channel&gt;&amp;from=0# at 24 hours - 1.0 :: ")
    assert "&target=cactiStyle(stats.x%7C%3C%21channel%3E%26from%3D0%23)&width=588" in body
    assert "<!channel>" not in body
