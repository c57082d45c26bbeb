"""The web app in a real headless browser: Debian's chromium driven by Playwright, against a real server.

Screenshots go to ``<pytest tmp dir>/screenshots`` (the path is printed; ``pytest -s`` shows it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from skyline_analyzer import config
from tests import support
from tests.webapp_server import SCRIPT_NAME, WebappServer, analyzer_run, spike_series, store_series

CHROMIUM = "/usr/bin/chromium"
SPIKED = ["web.cpu.host1", SCRIPT_NAME]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def site(load_settings: Callable[..., config.Settings], make_settings: Callable[..., Path],
         redis_conn: redis.Redis) -> Iterator[WebappServer]:
    settings = load_settings(**support.NO_ALERTS)
    end = int(time.time())
    names = [*SPIKED, "web.cpu.host2", "db.load"]
    store_series(redis_conn, settings, {n: spike_series(end, points=8640, step=10, spike=n in SPIKED) for n in names})
    analyzer_run(settings)
    with WebappServer(make_settings(**support.NO_ALERTS)) as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the console errors and uncaught exceptions it reports."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            errors.append(f"{message.type}: {message.text} at {message.location.get('url')}")

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(f"exception: {exc}"))
    yield opened, errors
    context.close()


def wait_for(tab: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll ``expression`` in the page (``page.wait_for_function`` evaluates a string, which the CSP forbids)."""
    assert support.wait_until(lambda: tab.evaluate(expression), timeout, interval=0.1), expression


def test_now_metric_zoom_and_escaping(site: WebappServer, page: tuple[Page, list[str]], tmp_path: Path) -> None:
    tab, errors = page
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")

    tab.goto(site.url + "/now")
    rows = tab.locator("#anomalies tbody tr")
    assert rows.count() == 2
    assert sorted(rows.locator("td.metric").all_inner_texts()) == sorted(SPIKED)
    assert "median_absolute_deviation" in rows.first.locator("td.triggered").inner_text()
    assert tab.locator("#anomaly-count").inner_text() == "2"
    wait_for(tab, "[...document.querySelectorAll('#anomalies img')].every(i => i.complete && i.naturalWidth)")
    assert tab.evaluate("window.pwned") is None
    tab.screenshot(path=str(shots / "now.png"), full_page=True)

    tab.get_by_role("link", name="web.cpu.host1").click()
    tab.wait_for_selector("#chart canvas")
    assert tab.locator("#metric-name").inner_text() == "web.cpu.host1"
    assert tab.locator("#verdict").inner_text().startswith("Anomalous")
    assert tab.locator("#explain tbody tr").count() == 9
    tab.screenshot(path=str(shots / "metric.png"), full_page=True)
    full = tab.evaluate("[skylineChart.scales.x.min, skylineChart.scales.x.max]")
    box = tab.locator("#chart .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    tab.mouse.move(box["x"] + box["width"] * 0.3, y)
    tab.mouse.down()
    tab.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    tab.mouse.up()
    zoomed = tab.evaluate("[skylineChart.scales.x.min, skylineChart.scales.x.max]")
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    assert (zoomed[1] - zoomed[0]) < 0.5 * (full[1] - full[0])
    tab.mouse.move(box["x"] + box["width"] * 0.5, y)
    assert tab.locator(".u-legend").inner_text().count("value") >= 1
    tab.screenshot(path=str(shots / "metric-zoomed.png"), full_page=True)

    tab.goto(site.url + "/metric?name=" + quote(SCRIPT_NAME, safe=""))
    tab.wait_for_selector("#chart canvas")
    assert tab.locator("#metric-name").inner_text() == SCRIPT_NAME
    assert tab.title().startswith(SCRIPT_NAME)
    assert tab.evaluate("window.pwned") is None
    tab.screenshot(path=str(shots / "metric-script-name.png"), full_page=True)

    tab.goto(site.url + "/metric")
    tab.locator("#search-box").press_sequentially("web.cpu.")
    wait_for(tab, "document.querySelectorAll('#search-suggestions option').length == 2")
    tab.locator("#search-box").press("Enter")
    assert sorted(tab.locator("#results a").all_inner_texts()) == ["web.cpu.host1", "web.cpu.host2"]
    tab.screenshot(path=str(shots / "search.png"), full_page=True)
    assert errors == []
    assert sorted(p.name for p in shots.iterdir()) == [
        "metric-script-name.png", "metric-zoomed.png", "metric.png", "now.png", "search.png"]
