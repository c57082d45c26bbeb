"""ALERTS matching, rate limiting, ordering and the Mirage hand-off, against a real Redis and syslog socket."""

from __future__ import annotations

import os
import stat

import msgpack
import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.alerting import mirage, stale
from skyline_analyzer.detection.anomaly import Anomaly
from tests.alert_receivers import SyslogReceiver
from tests.support import wait_until

NOW = 1_700_000_000.0


@pytest.fixture
def syslog():
    with SyslogReceiver() as receiver:
        yield receiver


def syslog_settings(load_settings, receiver, alert_tuples, **overrides):
    return load_settings(ALERTS=alert_tuples, SYSLOG_OPTS={"ident": "skytest", "address": receiver.address},
                ALERT_TIMEOUT=2.0, **overrides)


def test_filesafe_keeps_alphanumerics_dot_underscore_dash():
    assert mirage.filesafe("stats.a-b_c/d e:f*") == "stats.a-b_cdef"


def test_syslog_alert_is_sent_once_then_rate_limited(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)])
    anomaly = Anomaly(5.5, "stats.requests", 1_699_999_990, ("grubbs",))
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    lines = syslog.lines()
    assert len(lines) == 1
    assert lines[0].startswith("<164>")
    assert lines[0].endswith(f" skytest[{os.getpid()}]: Analyzer - Anomalous metric: stats.requests (value: 5.5)")
    assert msgpack.unpackb(redis_conn.get("last_alert.syslog.stats.requests")) == 5.5
    assert 55 <= redis_conn.ttl("last_alert.syslog.stats.requests") <= 60

    alerts.send_alerts(redis_conn, settings, [anomaly], NOW + 60)
    assert syslog.lines(wait=0.2) == []


def test_alerts_again_after_expiry(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 1)])
    anomaly = Anomaly(1, "stats.requests", 1_699_999_990)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    assert len(syslog.lines()) == 1
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    assert syslog.lines(wait=0.1) == []
    wait_until(lambda: not redis_conn.exists("last_alert.syslog.stats.requests"), timeout=3)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    assert len(syslog.lines()) == 1


def test_same_alerter_first_matching_tuple_wins(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats.requests", "syslog", 100), ("stats", "syslog", 900)])
    alerts.send_alerts(redis_conn, settings, [Anomaly(2.0, "stats.requests", 1)], NOW)
    assert len(syslog.lines()) == 1
    assert 95 <= redis_conn.ttl("last_alert.syslog.stats.requests") <= 100


def test_tuples_are_the_outer_loop_and_each_metric_alerts_once(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats.a", "syslog", 100), ("stats", "syslog", 900)])
    anomalies = [Anomaly(1.0, "stats.b", 1), Anomaly(2.0, "stats.a", 1), Anomaly(3.0, "other", 1)]
    jobs, handed_to_mirage = alerts.plan_alerts(redis_conn, settings, anomalies)
    assert handed_to_mirage == set()
    assert [(job.rule.expiration, job.target.base_name) for job in jobs] == [(100, "stats.a"), (900, "stats.b")]


def test_failed_send_leaves_no_key_and_the_next_run_retries(load_settings, syslog, redis_conn, tmp_path):
    anomaly = Anomaly(7.0, "stats.requests", 1)
    broken = load_settings(ALERTS=[("stats", "syslog", 60)], ALERT_TIMEOUT=1.0,
                  SYSLOG_OPTS={"ident": "skytest", "address": str(tmp_path / "nobody-listens.sock")})
    alerts.send_alerts(redis_conn, broken, [anomaly], NOW)
    assert not redis_conn.exists("last_alert.syslog.stats.requests")

    working = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)])
    alerts.send_alerts(redis_conn, working, [anomaly], NOW)
    assert len(syslog.lines()) == 1
    assert redis_conn.exists("last_alert.syslog.stats.requests")


def test_unknown_alerter_is_logged_once_and_others_still_fire(load_settings, syslog, redis_conn, caplog):
    # Start-up validation refuses '../evil\n'; replace() gets past it to test the dispatcher's own defence.
    settings = syslog_settings(load_settings, syslog, []).replace(
        ALERTS=[("stats", "hipchat", 60), ("stats", "../evil\n", 60), ("stats", "syslog", 60)])
    for run in range(3):
        alerts.send_alerts(redis_conn, settings, [Anomaly(1.0, f"stats.x{run}", 1)], NOW)
        assert len(syslog.lines()) == 1
    unknown = [r for r in caplog.records if "unknown alerter" in r.getMessage()]
    assert [r.getMessage().split(" (known")[0] for r in unknown] == [
        "error :: alerts - ALERTS names an unknown alerter 'hipchat'",
        "error :: alerts - ALERTS names an unknown alerter '../evil\\n'",
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert redis_conn.keys("last_alert.hipchat.*") == []


def test_syslog_disabled_sends_nothing(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)], SYSLOG_ENABLED=False)
    alerts.send_alerts(redis_conn, settings, [Anomaly(1.0, "stats.x", 1)], NOW)
    assert syslog.lines(wait=0.2) == []


def test_redis_down_costs_nothing_and_does_not_raise(load_settings, syslog, tmp_path):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)])
    dead = redis_lib.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"), retry=Retry(NoBackoff(), 0))
    alerts.send_alerts(dead, settings, [Anomaly(1.0, "stats.x", 1)], NOW)
    stale.send_stale_digest(dead, settings, NOW)
    # A Redis error on the rate-limit check skips the metric, as v1.2.8 did.
    assert syslog.lines(wait=0.2) == []


# --- Mirage --------------------------------------------------------------------------------------------


@pytest.fixture
def mirage_dir(tmp_path):
    path = tmp_path / "mirage_check"
    path.mkdir()
    return path


def test_mirage_tuple_writes_the_check_file_and_the_skip_key(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 120, 168)], ENABLE_MIRAGE=True,
                               MIRAGE_CHECK_PATH=str(mirage_dir))
    anomaly = Anomaly(3.25, "stats.web/latency", 1_699_999_960.0)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    check = mirage_dir / "1699999960.stats.weblatency.txt"
    assert check.read_text() == (
        'metric = "stats.web/latency"\nvalue = "3.25"\nhours_to_resolve = "168"\n'
        'metric_timestamp = "1699999960.0"\n'
    )
    assert stat.S_IMODE(check.stat().st_mode) == 0o644
    assert msgpack.unpackb(redis_conn.get("mirage.metrics.stats.web/latency")) == 3.25
    assert 115 <= redis_conn.ttl("mirage.metrics.stats.web/latency") <= 120
    # ENABLE_FULL_DURATION_ALERTS: the Analyzer alerts too, in the Mirage context.
    lines = syslog.lines()
    assert len(lines) == 1 and lines[0].endswith("Mirage - Anomalous metric: stats.web/latency (value: 3.25)")


def test_full_duration_alert_is_rate_limited_l4_fix(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 120, 168)], ENABLE_MIRAGE=True,
                               MIRAGE_CHECK_PATH=str(mirage_dir))
    anomaly = Anomaly(3, "stats.x", 1_699_999_960)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW)
    alerts.send_alerts(redis_conn, settings, [anomaly], NOW + 60)
    assert len(syslog.lines()) == 1
    # The hand-off itself happens on every anomalous run.
    assert (mirage_dir / "1699999960.stats.x.txt").exists()


def test_without_full_duration_alerts_mirage_tuples_only_hand_off(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 120, 168)], ENABLE_MIRAGE=True,
                               ENABLE_FULL_DURATION_ALERTS=False, MIRAGE_CHECK_PATH=str(mirage_dir))
    alerts.send_alerts(redis_conn, settings, [Anomaly(3, "stats.x", 1_699_999_960)], NOW)
    assert syslog.lines(wait=0.2) == []
    assert (mirage_dir / "1699999960.stats.x.txt").exists()


def test_first_matching_mirage_tuple_sets_the_hours_l5_fix(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats.x", "syslog", 120, 24), ("stats", "smtp", 600, 168)],
                               ENABLE_MIRAGE=True, ENABLE_FULL_DURATION_ALERTS=False,
                               MIRAGE_CHECK_PATH=str(mirage_dir))
    alerts.send_alerts(redis_conn, settings, [Anomaly(3, "stats.x", 1_699_999_960)], NOW)
    assert 'hours_to_resolve = "24"' in (mirage_dir / "1699999960.stats.x.txt").read_text()
    assert 115 <= redis_conn.ttl("mirage.metrics.stats.x") <= 120


def test_metrics_handed_to_mirage_are_not_alerted_by_plain_tuples(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)], ENABLE_MIRAGE=True,
                               MIRAGE_CHECK_PATH=str(mirage_dir))
    redis_conn.sadd("mirage.unique_metrics", "metrics.stats.in_set")
    redis_conn.set("mirage.metrics.stats.skip_key", msgpack.packb(1), ex=60)
    anomalies = [Anomaly(1, "stats.in_set", 1), Anomaly(1, "stats.skip_key", 1), Anomaly(1, "stats.plain", 1)]
    alerts.send_alerts(redis_conn, settings, anomalies, NOW)
    lines = syslog.lines()
    assert len(lines) == 1 and "stats.plain" in lines[0]


def test_mirage_disabled_ignores_the_fourth_element(load_settings, syslog, redis_conn, mirage_dir):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60, 168)], MIRAGE_CHECK_PATH=str(mirage_dir))
    redis_conn.set("mirage.metrics.stats.x", msgpack.packb(1), ex=60)
    alerts.send_alerts(redis_conn, settings, [Anomaly(1, "stats.x", 1)], NOW)
    assert len(syslog.lines()) == 1
    assert list(mirage_dir.iterdir()) == []


def test_missing_mirage_check_dir_is_logged_and_alerting_goes_on(load_settings, syslog, redis_conn, tmp_path, caplog):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60, 168)], ENABLE_MIRAGE=True,
                               MIRAGE_CHECK_PATH=str(tmp_path / "absent"))
    alerts.send_alerts(redis_conn, settings, [Anomaly(1, "stats.x", 1)], NOW)
    assert "failed to write the Mirage check file for stats.x" in caplog.text
    assert len(syslog.lines()) == 1
    assert not (tmp_path / "absent").exists()


def test_manage_mirage_metrics_disabled_touches_nothing(load_settings, redis_conn):
    settings = load_settings(ALERTS=[("stats", "smtp", 60, 168)])
    assert mirage.manage_mirage_metrics(redis_conn, settings, ["metrics.stats.x"], NOW) == set()
    assert redis_conn.keys("*") == []


def test_manage_mirage_metrics_rebuilds_then_throttles(load_settings, redis_conn):
    settings = load_settings(ENABLE_MIRAGE=True, ALERTS=[("stats", "smtp", 60), ("stats.api", "smtp", 60, 168)])
    redis_conn.sadd("mirage.unique_metrics", "metrics.gone")
    found = mirage.manage_mirage_metrics(redis_conn, settings, ["metrics.stats.api.a", "metrics.stats.web"], NOW)
    assert found == {"metrics.stats.api.a"}
    assert redis_conn.smembers("mirage.unique_metrics") == {b"metrics.stats.api.a"}
    assert redis_conn.get("analyzer.manage_mirage_unique_metrics") == str(int(NOW)).encode()
    assert 295 <= redis_conn.ttl("analyzer.manage_mirage_unique_metrics") <= 300

    again = mirage.manage_mirage_metrics(redis_conn, settings, ["metrics.stats.api.b"], NOW + 60)
    assert again == {"metrics.stats.api.a"}
    assert redis_conn.smembers("mirage.unique_metrics") == {b"metrics.stats.api.a"}


def test_manage_mirage_metrics_without_mirage_tuples_rebuilds_every_run(load_settings, redis_conn):
    settings = load_settings(ENABLE_MIRAGE=True, ALERTS=[("stats", "smtp", 60)])
    redis_conn.sadd("mirage.unique_metrics", "metrics.gone")
    assert mirage.manage_mirage_metrics(redis_conn, settings, ["metrics.stats.a"], NOW) == set()
    assert not redis_conn.exists("mirage.unique_metrics")
    assert not redis_conn.exists("analyzer.manage_mirage_unique_metrics")


# --- names that reach files and lines ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ['stats.a" + open("x") + "', "stats.a\\", "stats.a\nvalue = 1", "stats.\x1b[2Ja", "stats.a\u2028b"]
)
def test_mirage_refuses_a_name_that_would_forge_the_check_file(
    load_settings, syslog, redis_conn, mirage_dir, caplog, name
):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 120, 168)], ENABLE_MIRAGE=True,
                               ENABLE_FULL_DURATION_ALERTS=False, MIRAGE_CHECK_PATH=str(mirage_dir))
    assert alerts.send_alerts(redis_conn, settings, [Anomaly(3, name, 1_699_999_960)], NOW) == 0
    assert list(mirage_dir.iterdir()) == []
    assert redis_conn.keys("mirage.metrics.*") == []
    # The metric stays with the Analyzer, which alerts on it itself, the name escaped on one line.
    [line] = syslog.lines()
    assert line.count("\n") == 0 and "\x1b" not in line and "Analyzer - Anomalous metric: stats." in line
    assert redis_conn.exists(f"last_alert.syslog.{name}")
    assert all("\n" not in r.getMessage() and "\x1b" not in r.getMessage() for r in caplog.records)
    assert mirage.manage_mirage_metrics(redis_conn, settings, [f"metrics.{name}", "metrics.stats.ok"], NOW) == {
        "metrics.stats.ok"}
    assert "1 metrics matched by a Mirage rule have names a check file cannot hold" in caplog.text


def test_mirage_check_text_refuses_an_unfit_name():
    with pytest.raises(ValueError, match="cannot be written in a check file"):
        mirage.mirage_check_text(Anomaly(1, 'a"b', 1), 24)


def test_syslog_line_escapes_the_name(load_settings, syslog, redis_conn):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)])
    alerts.send_alerts(redis_conn, settings, [Anomaly(1.0, "stats.a\nMar  1 00:00:00 host forged: x", 1)], NOW)
    [line] = syslog.lines()
    assert line.endswith("Analyzer - Anomalous metric: stats.a\\nMar  1 00:00:00 host forged: x (value: 1.0)")


def test_an_undecodable_mirage_member_is_skipped_not_the_set(load_settings, syslog, redis_conn, mirage_dir, caplog):
    settings = syslog_settings(load_settings, syslog, [("stats", "syslog", 60)], ENABLE_MIRAGE=True,
                               MIRAGE_CHECK_PATH=str(mirage_dir))
    redis_conn.sadd("mirage.unique_metrics", b"metrics.\xff\xfe", "metrics.stats.in_set")
    alerts.send_alerts(redis_conn, settings, [Anomaly(1, "stats.in_set", 1), Anomaly(1, "stats.plain", 1)], NOW)
    lines = syslog.lines()
    assert len(lines) == 1 and "stats.plain" in lines[0]
    assert "mirage.unique_metrics: 1 members are not UTF-8 and were skipped, e.g. b'metrics.\\xff\\xfe'" in caplog.text
