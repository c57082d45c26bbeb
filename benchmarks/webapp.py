"""Page-load times of the web app: server alone and server + headless chromium, medians of N loads.

Scenarios, all in one run against one private Redis and one ``skyline-analyzer webapp`` process:

* ``now-empty``: the Now page of a run with no anomaly (the baseline);
* ``now-1000``: the Now page of a run with 1,000 anomalies (each metric a day at 60 s);
* ``metric-1440`` and ``metric-8640``: the Metric page (chart, explanation) of a 1,440- and an 8,640-point
  series.

"browser" is ``page.goto(url)`` until the load event, plus, for a Metric page, until the chart is drawn
and, for Now, until the sparklines in view are loaded. Usage::

    .venv/bin/python benchmarks/webapp.py [--loads 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from skyline_analyzer import config, connections  # noqa: E402
from skyline_analyzer.analyzer import outputs  # noqa: E402
from skyline_analyzer.analyzer.outputs import RunReport  # noqa: E402
from skyline_analyzer.detection.anomaly import Anomaly  # noqa: E402
from skyline_analyzer.harness import private_redis  # noqa: E402
from tests import support  # noqa: E402
from tests.webapp_server import WebappServer, spike_series, store_series  # noqa: E402

ANOMALIES = 1000
TRIGGERED = ("first_hour_average", "stddev_from_average", "grubbs", "median_absolute_deviation")


def write_run(settings: config.Settings, names: list[str], end: int) -> None:
    """The dump and the run report as the Analyzer writes them, with every named metric anomalous."""
    anomalies = [Anomaly(900.0, name, end, TRIGGERED) for name in names]
    report = RunReport(1.5, len(names) + 2, len(names) + 2, anomalies, {}, {a: len(names) for a in TRIGGERED})
    outputs.write_anomaly_dump(settings, anomalies)
    outputs.write_run_report(settings, report, end)


def server_ms(url: str, loads: int) -> float:
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def browser_ms(page: Page, url: str, ready: str, loads: int) -> float:
    times = []
    for _ in range(loads):
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        while not page.evaluate(ready):
            time.sleep(0.002)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


VISIBLE_SPARKLINES = ("[...document.querySelectorAll('#anomalies img')].filter(i => i.getBoundingClientRect().top"
                      " < innerHeight).every(i => i.complete)")
CHART = "!!document.querySelector('#chart canvas')"
NOTHING = "true"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=15, help="loads per scenario (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with private_redis(directory) as socket_path:
            settings_path = support.write_settings(directory, REDIS_SOCKET_PATH=socket_path, **support.NO_ALERTS)
            settings = config.load(settings_path)
            conn = connections.connect(settings)
            end = int(time.time())
            names = [f"bench.host{n // 50:03d}.metric{n:04d}" for n in range(ANOMALIES)]
            started = time.perf_counter()
            store_series(conn, settings, {name: spike_series(end) for name in names})
            store_series(conn, settings, {"bench.long": spike_series(end, points=8640, step=10),
                                          "bench.day": spike_series(end)})
            print(f"seeded {ANOMALIES + 2} series in {time.perf_counter() - started:.1f} s")
            scenarios = [("now-empty", "/now", VISIBLE_SPARKLINES, []),
                         ("now-1000", "/now", VISIBLE_SPARKLINES, names),
                         ("metric-1440", "/metric?name=" + quote("bench.day"), CHART, names),
                         ("metric-8640", "/metric?name=" + quote("bench.long"), CHART, names)]
            rows = []
            with WebappServer(settings_path) as server, sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for label, path, ready, anomalous in scenarios:
                    write_run(settings, anomalous, end)
                    url = server.url + path
                    browser_ms(page, url, ready, 2)  # warm-up: caches, the browser's first paint
                    rows.append((label, server_ms(url, args.loads), browser_ms(page, url, ready, args.loads)))
                browser.close()
            conn.close()
    baseline = rows[0]
    print(f"\nmedian of {args.loads} loads; ratios against {baseline[0]} in the same run")
    print(f"{'scenario':<14}{'server ms':>11}{'ratio':>8}{'browser ms':>12}{'ratio':>8}")
    for label, server, browser in rows:
        print(f"{label:<14}{server:>11.1f}{server / baseline[1]:>8.1f}{browser:>12.1f}{browser / baseline[2]:>8.1f}")


if __name__ == "__main__":
    main()
