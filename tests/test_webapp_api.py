"""The web app's JSON API and pages over HTTP, from a real server process against a private Redis."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from skyline_analyzer import config, harness
from skyline_analyzer.exceptions import SettingsError
from skyline_analyzer.webapp.store import MetricIndex
from tests import support
from tests.webapp_server import SCRIPT_NAME, WebappServer, analyzer_run, spike_series, store_series

SPIKED = ["web.cpu.host1", SCRIPT_NAME]
QUIET = ["web.cpu.host2", "db.load"]


@pytest.fixture
def seeded(load_settings: Callable[..., config.Settings], make_settings: Callable[..., Path],
           redis_conn: redis.Redis) -> Iterator[tuple[config.Settings, Path]]:
    """Four metrics, two ending in a spike, and one Analyzer run over them."""
    settings = load_settings(**support.NO_ALERTS)
    end = int(time.time())
    store_series(redis_conn, settings, {name: spike_series(end, spike=name in SPIKED) for name in SPIKED + QUIET})
    analyzer_run(settings)
    yield settings, make_settings(**support.NO_ALERTS)


@pytest.fixture
def server(seeded: tuple[config.Settings, Path]) -> Iterator[WebappServer]:
    with WebappServer(seeded[1]) as running:
        yield running


def get_json(server: WebappServer, path: str) -> tuple[int, dict]:
    status, headers, body = server.get(path)
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


def test_anomalies_are_the_runs_with_triggered_algorithms_and_health(server: WebappServer) -> None:
    status, data = get_json(server, "/api/anomalies")
    assert status == 200
    assert sorted(a["metric"] for a in data["anomalies"]) == sorted(SPIKED)
    assert all(a["value"] == 900.0 and a["triggered"] for a in data["anomalies"])
    assert "median_absolute_deviation" in data["anomalies"][0]["triggered"]
    health = data["health"]
    assert 0 <= health["heartbeat_age"] < 60
    run = health["last_run"]
    assert (run["total_metrics"], run["total_analyzed"], run["total_anomalies"]) == (4, 4, 2)
    status, _, page = server.get("/now")
    assert status == 200
    text = page.decode()
    assert "web.cpu.host1" in text and "median_absolute_deviation" in text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&#34;&lt;b&gt;" in text
    assert "<script>window" not in text and "<b>" not in text


def test_search_series_and_explain(server: WebappServer) -> None:
    status, data = get_json(server, "/api/metrics?prefix=web.cpu.")
    assert (status, data["metrics"], data["truncated"]) == (200, ["web.cpu.host1", "web.cpu.host2"], False)
    assert get_json(server, "/api/metrics?prefix=web&limit=1")[1] == {
        "prefix": "web", "metrics": ["web.cpu.host1"], "truncated": True}
    status, series = get_json(server, "/api/series?metric=web.cpu.host1")
    assert status == 200 and series["length"] == len(series["values"]) == 1440
    assert series["values"][-1] == 900.0 and isinstance(series["timestamps"][0], int)
    reduced = get_json(server, "/api/series?metric=web.cpu.host1&points=100")[1]
    assert len(reduced["values"]) <= 100 and max(reduced["values"]) == 900.0
    for name, anomalous in (("web.cpu.host1", True), ("db.load", False)):
        status, why = get_json(server, "/api/explain?metric=" + name)
        assert status == 200 and why["anomalous"] is anomalous and why["exception"] is None
        assert [r["algorithm"] for r in why["algorithms"]] == why["settings"]["ALGORITHMS"]
        assert why["false_votes"] == sum(r["vote"] is False for r in why["algorithms"])
    mad = next(r for r in get_json(server, "/api/explain?metric=web.cpu.host1")[1]["algorithms"]
               if r["algorithm"] == "median_absolute_deviation")
    assert mad["vote"] is True and mad["statistic"] > mad["threshold"] == 6.0
    status, _, page = server.get("/metric?name=" + _quote(SCRIPT_NAME))
    text = page.decode()
    assert status == 200 and "<script>window" not in text
    assert '<script type="application/json" id="series-data">{"metric":"evil.\\u003cscript\\u003e' in text


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


BAD_INPUT = [
    ("/api/series?metric=no.such.metric", 404, "no such metric"),
    ("/api/explain?metric=unique_metrics", 404, "no such metric"),
    ("/api/series", 400, "'metric' is required"),
    ("/api/series?metric=a&metric=b", 400, "given 2 times"),
    ("/api/series?metric=web.cpu.host1&points=1", 400, "'points' must be a whole number from 2 to 10000"),
    ("/api/series?metric=web.cpu.host1&points=9" + "9" * 40, 400, "'points' must be"),
    ("/api/explain?metric=web.cpu.host1&now=nan", 400, "'now' must be a finite number"),
    ("/api/metrics?prefix=%01", 400, "control characters"),
    ("/api/metrics?prefix=" + "a" * 3000, 414, "limited to 2048 bytes"),
    ("/api/metrics?prefix=%ff%fe", 200, ""),
    ("/api/nothing", 404, "Not Found"),
]


def test_bad_input_gets_a_clear_4xx(server: WebappServer) -> None:
    for path, status, message in BAD_INPUT:
        got, headers, body = server.get(path)
        assert (path, got) == (path, status)
        assert message in body.decode()
        assert "script-src 'self'" in headers["content-security-policy"]


def test_pages_answer_bad_input_with_escaped_html(server: WebappServer) -> None:
    status, headers, body = server.get("/metric?name=%3Cimg%20src%3Dx%3E")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert b"<img src=x>" not in body and b"no such metric" in body
    status, _, body = server.get("/search?prefix=%3Cb%3E")
    assert status == 200 and b"&lt;b&gt;" in body and b"<b>" not in body
    status, headers, body = server.get("/sparkline.svg?metric=web.cpu.host1")
    assert status == 200 and headers["content-type"] == "image/svg+xml" and body.count(b"<circle") == 1


def _snapshot(conn: redis.Redis) -> dict[bytes, bytes]:
    return {key: conn.dump(key) for key in conn.scan_iter(count=1000)}


def test_browsing_never_writes_to_redis(server: WebappServer, redis_conn: redis.Redis) -> None:
    before, writes_before = _snapshot(redis_conn), _write_count(redis_conn)
    paths = ["/now", "/metric", "/search?prefix=web", "/api/anomalies", "/api/metrics?prefix=",
             "/sparkline.svg?metric=db.load&ts=1", "/metric?name=no.such"]
    for name in SPIKED + QUIET:
        quoted = _quote(name)
        paths += [f"/metric?name={quoted}", f"/api/series?metric={quoted}", f"/api/explain?metric={quoted}"]
    assert all(server.get(path)[0] in (200, 404) for path in paths)
    assert _snapshot(redis_conn) == before
    assert _write_count(redis_conn) == writes_before


def _write_count(conn: redis.Redis) -> int:
    """Commands Redis counted as writes so far (the server's own statistics)."""
    stats = conn.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.split("_", 1)[1] in {
        "set", "setex", "del", "append", "sadd", "srem", "expire", "flushall", "flushdb", "unlink", "rename"})


def test_basic_auth_and_allowed_ips(make_settings: Callable[..., Path], redis_conn: redis.Redis) -> None:
    guarded = make_settings(WEBAPP_AUTH_ENABLED=True, WEBAPP_AUTH_USER="ops", WEBAPP_AUTH_USER_PASSWORD="s3cret")
    with WebappServer(guarded) as server:
        status, headers, _ = server.get("/api/anomalies")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        for user, password, expected in (("ops", "s3cret", 200), ("ops", "wrong", 401), ("root", "s3cret", 401)):
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            assert server.get("/api/anomalies", {"Authorization": f"Basic {token}"})[0] == expected
        assert server.get("/api/anomalies", {"Authorization": "Basic %%%"})[0] == 401
    with WebappServer(make_settings(WEBAPP_ALLOWED_IPS=["10.0.0.0/8"])) as server:
        status, _, body = server.get("/now")
        assert status == 403 and b"may not use the web app" in body


def test_webapp_settings_are_checked(tmp_path: Path) -> None:
    for overrides, message in (
        ({"WEBAPP_AUTH_ENABLED": True}, "WEBAPP_AUTH_USER_PASSWORD: must be set"),
        ({"WEBAPP_ALLOWED_IPS": ["10.0.0.300"]}, "an IP address or network"),
        ({"WEBAPP_MAX_QUERY_BYTES": 10}, "64 to 1048576"),
    ):
        with pytest.raises(SettingsError, match=message):
            support.load_settings(tmp_path, **overrides)


def test_prefix_search_over_100000_names(redis_conn: redis.Redis) -> None:
    names = [f"host{n % 500:03d}.metric{n:06d}" for n in range(100_000)]
    for start in range(0, len(names), 10_000):
        redis_conn.sadd("metrics.unique_metrics", *(f"metrics.{n}" for n in names[start : start + 10_000]))
    redis_conn.sadd("metrics.unique_metrics", b"metrics.\xff\xfe")
    index = MetricIndex(redis_conn, "metrics.", ttl=60)
    found, truncated = index.search("host042.", 1000)
    assert found == sorted(n for n in names if n.startswith("host042.")) and not truncated
    assert index.search("host042.", 5) == (found[:5], True)
    assert index.search("zzz", 10) == ([], False)
    assert len(index.names()) == 100_000
    calls = redis_conn.info("commandstats")["cmdstat_smembers"]["calls"]
    index.search("host1", 10)
    assert redis_conn.info("commandstats")["cmdstat_smembers"]["calls"] == calls, "the sorted names are reused"


def test_the_unit_starts_the_command_that_tells_systemd_ready(make_settings: Callable[..., Path],
                                                              redis_conn: redis.Redis, tmp_path: Path) -> None:
    unit = (support.REPO / "etc" / "systemd" / "webapp.service").read_text()
    assert "Type=notify" in unit and "skyline-analyzer webapp" in unit
    settings_path = make_settings(WEBAPP_PORT=support.free_port())
    with support.NotifyReceiver() as notify:
        process = subprocess.Popen([str(support.SCRIPT), "webapp"],
                                   env=support.settings_env(settings_path, NOTIFY_SOCKET=notify.path),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert notify.wait_for("READY=1")
        finally:
            harness.stop(process, 10)
        assert process.returncode == 0
        assert notify.wait_for("STOPPING=1")
        assert notify.messages() == ["READY=1", "STOPPING=1"]
    log = (tmp_path / "log" / "webapp.log").read_text()
    assert "listening on http://127.0.0.1:" in log and "webapp stopped" in log


def test_other_commands_do_not_import_the_web_stack() -> None:
    probe = ("import sys; from skyline_analyzer.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2', 'playwright') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
