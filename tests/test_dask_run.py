"""The Analyzer's run on Dask distributed (a real ``dask scheduler`` and ``dask worker`` processes).

The same metrics, golden vectors included, give the same anomalies, exception counts, exception sets and
Graphite figures through Dask as through the local pool; a scheduler that cannot be reached costs one run.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from skyline_analyzer import config, keys
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.worker import EXCEPTION_SETS
from skyline_analyzer.harness import free_port
from skyline_analyzer.systemd import Notifier
from tests.scale_data import seed_mixed
from tests.support import CORPORA, NO_ALERTS, NotifyReceiver, settings_env, vector_expected
from tests.test_daemon_graphite import PlaintextListener

COUNT = 2400
#: Graphite figures that measure time, different from one run to the next.
TIMED = ("run_time", "total_time", "median_time")


def figures(listener: PlaintextListener) -> dict[str, str]:
    lines = b"".join(listener.connections).decode().splitlines()
    pairs = (line.split()[:2] for line in lines)
    return {name: value for name, value in pairs if not name.endswith(TIMED)}


def exception_sets(conn) -> dict[str, set[bytes]]:
    return {kind: {m for m in conn.smembers(key) if not m.startswith(keys.UPDATED_AT_MARKER.encode())}
            for kind, key in EXCEPTION_SETS.items()}


def anomalies(report) -> list[tuple]:
    return sorted((a.base_name, a.value, a.timestamp, tuple(a.triggered)) for a in report.anomalies)


@pytest.fixture
def seeded(redis_conn):
    now = int(time.time())
    return now, seed_mixed(redis_conn, now, COUNT)


def test_a_dask_run_equals_a_local_run(seeded, make_settings, dask_cluster, redis_conn):
    now, names = seeded
    seen = {}
    for executor in ("local", "dask"):
        listener = PlaintextListener()
        try:
            settings = config.load(make_settings(
                **NO_ALERTS, ANALYZER_PROCESSES=2, ANALYZER_EXECUTOR=executor, DASK_UNITS_PER_RUN=24,
                DASK_SCHEDULER_ADDRESS=dask_cluster.address, GRAPHITE_HOST="127.0.0.1", CARBON_PORT=listener.port))
            analyzer = Analyzer(settings)
            report = analyzer.run_once(now=now)
            analyzer.close()
        finally:
            listener.close()
        seen[executor] = (report, figures(listener), exception_sets(redis_conn))
        redis_conn.delete(*EXCEPTION_SETS.values())
    (local, local_figures, local_sets), (dask, dask_figures, dask_sets) = seen["local"], seen["dask"]

    assert dask.total_metrics == local.total_metrics == len(names)
    assert dask.unprocessed == local.unprocessed == 0
    assert dask.total_analyzed == local.total_analyzed
    assert dask.exceptions == local.exceptions
    assert local.exceptions["Other"] == local.exceptions["DeletedByRoomba"] == 1
    assert dask.anomaly_breakdown == local.anomaly_breakdown
    assert anomalies(dask) == anomalies(local)
    assert dask_sets == local_sets
    assert dask_figures == local_figures
    assert any(".timing.times_run" in name for name in dask_figures)
    # The golden vectors' anomalies are among them, as `check` finds them.
    flagged = {a.base_name for a in dask.anomalies}
    for corpus in CORPORA:
        expected = vector_expected(corpus)["series"]
        wanted = {f"{corpus}.{n}" for n, r in expected.items() if r["anomalous"]}
        assert wanted and wanted == {n for n in flagged if n.startswith(f"{corpus}.")}


def test_an_unreachable_scheduler_costs_the_run_and_the_next_run_connects(seeded, load_settings, own_dask, caplog):
    """Under a watchdog (WatchdogSec=2 s), so that each run connects from the helper thread that lets the
    daemon ping meanwhile: no silence within a run reaches 2 s."""
    now, names = seeded
    cluster = own_dask(1)
    port = int(cluster.address.rsplit(":", 1)[1])
    settings = load_settings(**NO_ALERTS, ANALYZER_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=cluster.address,
                             DASK_CONNECT_TIMEOUT=3, MAX_ANALYZER_PROCESS_RUNTIME=30)
    spans = []

    def run_once(at: int):
        started = time.monotonic()
        report = analyzer.run_once(now=at)
        spans.append((started, time.monotonic()))
        return report

    with NotifyReceiver() as notify:
        analyzer = Analyzer(settings, Notifier(notify.environ(2_000_000)))
        try:
            assert run_once(now).unprocessed == 0
            # A crash: the worker loses its scheduler and exits (systemd's Restart= starts it again).
            cluster.scheduler.kill()
            cluster.scheduler.wait()
            lost = run_once(now + 1)
            assert lost.total_metrics == len(names)
            assert lost.unprocessed == len(names)
            assert lost.total_analyzed == 0 and lost.anomalies == []
            assert any("every metric is unprocessed" in r.getMessage() for r in caplog.records)
            cluster.start_scheduler(port)
            cluster.add_worker("w1-again")
            report = run_once(now + 2)
            assert report.unprocessed == 0
            assert report.total_analyzed + sum(report.exceptions.values()) == len(names)
        finally:
            analyzer.close()
        time.sleep(0.1)
        assert [notify.longest_silence(start, end) < 2.0 for start, end in spans] == [True] * 3


def test_no_scheduler_at_all_is_one_error_per_run(seeded, load_settings, caplog):
    now, names = seeded
    settings = load_settings(**NO_ALERTS, ANALYZER_EXECUTOR="dask", DASK_CONNECT_TIMEOUT=1,
                             DASK_SCHEDULER_ADDRESS=f"tcp://127.0.0.1:{free_port()}")
    analyzer = Analyzer(settings)
    try:
        for run in range(2):
            assert analyzer.run_once(now=now + run).unprocessed == len(names)
    finally:
        analyzer.close()
    assert sum("every metric is unprocessed" in r.getMessage() for r in caplog.records) == 2


def test_the_watchdog_is_pinged_while_the_scheduler_is_unreachable(seeded, load_settings):
    """WatchdogSec=2 s (a ping every second) and a scheduler that refuses connections, tried for
    DASK_CONNECT_TIMEOUT=5 s: no silence of the run reaches 2 s. Without pings during the connect it is 5 s."""
    now, names = seeded
    settings = load_settings(**NO_ALERTS, ANALYZER_EXECUTOR="dask", DASK_CONNECT_TIMEOUT=5,
                             DASK_SCHEDULER_ADDRESS=f"tcp://127.0.0.1:{free_port()}")
    with NotifyReceiver() as notify:
        analyzer = Analyzer(settings, Notifier(notify.environ(2_000_000)))
        try:
            started = time.monotonic()
            report = analyzer.run_once(now=now)
            ended = time.monotonic()
        finally:
            analyzer.close()
        time.sleep(0.1)
        assert notify.longest_silence(started, ended) < 2.0
    assert report.unprocessed == len(names)
    assert ended - started >= 5.0


def test_the_default_executor_imports_no_dask(seeded, make_settings):
    """A whole run with the default settings, in a fresh interpreter: neither dask nor distributed is loaded."""
    settings_path = make_settings(**NO_ALERTS)
    code = ("import sys, time\n"
            "from skyline_analyzer import config\n"
            "from skyline_analyzer.analyzer.daemon import Analyzer\n"
            "import skyline_analyzer.analyzer.pool, skyline_analyzer.analyzer.worker, skyline_analyzer.cli\n"
            "report = Analyzer(config.load()).run_once()\n"
            "assert report.total_metrics > 0 and report.unprocessed == 0, report\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n")
    done = subprocess.run([sys.executable, "-c", code], env=settings_env(settings_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
