"""The web app as an operator runs it: ``skyline-analyzer webapp`` in its own process, on a free port.

Also a seeded run: metrics written to Redis as Horizon stores them, then one real Analyzer run, which
writes the anomaly dump and the run report the Now page reads.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from skyline_analyzer import codec, harness, keys
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.config import Settings
from tests import support

#: A metric name with markup in it: every page must show it as text.
SCRIPT_NAME = 'evil.<script>window.pwned=1</script>"<b>'


class WebappServer:
    """``skyline-analyzer webapp`` with the given settings file, stopped on exit."""

    def __init__(self, settings_path: Path, port: int | None = None) -> None:
        self.settings_path = settings_path
        self.port = port or support.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> WebappServer:
        self.process = subprocess.Popen(
            [*support.CLI, "webapp", "--port", str(self.port)], env=support.settings_env(self.settings_path),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if not support.wait_until(self._answers, timeout=30, interval=0.1):
            harness.stop(self.process, 10)
            raise AssertionError(f"the web app did not start: {self.process.stderr.read()[-2000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        harness.stop(self.process, 10)
        self.process.stderr.close()

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            return True  # reported by __enter__ through the failing request below
        try:
            with urllib.request.urlopen(self.url + "/static/app.css", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # a refusal (401, 403) is an answer too
        except (urllib.error.URLError, ConnectionError):
            return False

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` of a GET; an error status is returned, not raised."""
        request = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()


def store_series(conn: redis.Redis, settings: Settings, series: Mapping[str, Sequence[Sequence[float]]]) -> None:
    """Write each series as Horizon stores it and list it in ``unique_metrics``."""
    pipe = conn.pipeline(transaction=False)
    for name, pairs in series.items():
        full_key = keys.metric(settings.FULL_NAMESPACE, name)
        pipe.set(full_key, codec.encode(pairs))
        pipe.sadd(keys.unique_metrics(settings.FULL_NAMESPACE), full_key)
    pipe.execute()


def spike_series(end: int, points: int = 1440, step: int = 60, spike: bool = True) -> list[list[float]]:
    """A gentle saw-tooth ending, when ``spike``, in three points far above it."""
    pairs = [[end - step * (points - 1 - i), 10.0 + (i % 7)] for i in range(points)]
    if spike:
        for pair in pairs[-3:]:
            pair[1] = 900.0
    return pairs


def analyzer_run(settings: Settings) -> RunReport:
    """One real run of the Analyzer (its dump and run report land where the settings say)."""
    report = Analyzer(settings).run_once(time.time())
    assert report is not None, "the Analyzer found no metrics"
    return report
