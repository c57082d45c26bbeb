"""Faults under a Dask run, on real processes: a worker killed, a worker hung, a worker joining.

Each test runs ``Analyzer.run_once`` in a thread and acts on a Dask worker process once the run's units are
under way, watching the scheduler's task states from a client of its own. Every metric must be counted once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import msgpack
import pytest

from skyline_analyzer import keys
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.analyzer.run_metrics import collect_run_metrics
from skyline_analyzer.defaults import ALGORITHM_NAMES
from tests.scale_data import seed_mixed
from tests.support import NO_ALERTS, wait_until

distributed = pytest.importorskip("distributed")


class Watcher:
    """A client of the test's own on the scheduler, and the worker processes by address."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.client = distributed.Client(cluster.address, set_as_default=False, timeout=30)

    def states(self) -> list[tuple[str, str, str | None]]:
        """(key, state, worker address) of the run's units, read on the scheduler."""

        # Defined here so that it travels by value: the scheduler cannot import the tests.
        def unit_states(dask_scheduler) -> list[tuple[str, str, str | None]]:
            found = []
            for key, task in dask_scheduler.tasks.items():
                if str(key).startswith("skyline-unit-"):
                    where = task.processing_on or (next(iter(task.who_has)) if task.who_has else None)
                    found.append((str(key), task.state, None if where is None else where.address))
            return found

        return self.client.run_on_scheduler(unit_states)

    def pid_of(self, address: str) -> int:
        return self.client.run(os.getpid, workers=[address])[address]

    def close(self) -> None:
        self.client.close()


class Run(threading.Thread):
    def __init__(self, analyzer: Analyzer, now: int) -> None:
        super().__init__(daemon=True)
        self.analyzer, self.now = analyzer, now
        self.report: RunReport | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.report = self.analyzer.run_once(now=self.now)
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float) -> None:
        """Wait for the run; it must have ended, without an error."""
        self.join(timeout=timeout)
        assert not self.is_alive() and self.error is None


def counted_once(report: RunReport, names: list[str]) -> None:
    assert report.total_metrics == len(names)
    assert report.total_analyzed + sum(report.exceptions.values()) + report.unprocessed == len(names)


def signature(report: RunReport) -> tuple:
    return (report.exceptions, report.anomaly_breakdown,
            sorted((a.base_name, a.value, a.timestamp, a.triggered) for a in report.anomalies))


def whole_as_baseline(report: RunReport, names: list[str], baseline: RunReport) -> None:
    """Every metric counted once, none unprocessed, and the same outcome as the local baseline run."""
    counted_once(report, names)
    assert report.unprocessed == 0
    assert signature(report) == signature(baseline)


@pytest.fixture
def scene(redis_conn, load_settings, tmp_path):
    """Seeded metrics, a baseline local run (reference engine) and a settings builder for the Dask runs."""
    now = int(time.time())
    names = seed_mixed(redis_conn, now, 1600)

    def settings(**overrides):
        return load_settings(**NO_ALERTS, ANALYZER_ENGINE="reference", ANALYZER_PROCESSES=2, **overrides)

    baseline = Analyzer(settings()).run_once(now=now)
    timings = collect_run_metrics(tmp_path / "tmp", list(ALGORITHM_NAMES))
    return now, names, settings, baseline, timings


def test_a_worker_killed_mid_run_costs_no_metric(scene, own_dask, redis_conn, tmp_path):
    now, names, settings, baseline, timings = scene
    cluster = own_dask(2)
    watcher = Watcher(cluster)
    analyzer = Analyzer(settings(ANALYZER_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=cluster.address,
                                 DASK_UNITS_PER_RUN=32, ENABLE_SECOND_ORDER=True))
    run = Run(analyzer, now)
    try:
        run.start()
        victim = []

        def one_done_one_running() -> bool:
            states = watcher.states()
            done = sum(state in ("memory", "released", "forgotten") for _, state, _ in states)
            busy = [where for _, state, where in states if state == "processing" and where]
            if done and busy:
                victim.append(busy[0])
            return bool(victim) or not run.is_alive()

        assert wait_until(one_done_one_running, timeout=300, interval=0.05)
        assert victim, "the run ended before a worker could be killed"
        os.kill(watcher.pid_of(victim[0]), signal.SIGKILL)
        run.finish(timeout=400)
    finally:
        watcher.close()
        analyzer.close()
    report = run.report
    whole_as_baseline(report, names, baseline)
    # Timings written once per unit, second-order history one entry per anomalous metric, re-runs or not.
    assert {a: t.times_run for a, t in collect_run_metrics(tmp_path / "tmp", list(ALGORITHM_NAMES)).items()} == {
        a: t.times_run for a, t in timings.items()}
    for anomaly in report.anomalies:
        history = msgpack.unpackb(redis_conn.get(keys.trigger_history(f"metrics.{anomaly.base_name}")))
        assert len(history) == 1


def test_a_hung_worker_costs_its_units_at_the_runtime_limit(scene, own_dask):
    now, names, settings, _, _ = scene
    limit = 40
    cluster = own_dask(2)
    watcher = Watcher(cluster)
    analyzer = Analyzer(settings(ANALYZER_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=cluster.address,
                                 DASK_UNITS_PER_RUN=32, MAX_ANALYZER_PROCESS_RUNTIME=limit))
    run = Run(analyzer, now)
    stopped = []
    try:
        started = time.monotonic()
        run.start()

        def processing() -> bool:
            busy = [where for _, state, where in watcher.states() if state == "processing" and where]
            stopped.extend(busy[:1])
            return bool(stopped) or not run.is_alive()

        assert wait_until(processing, timeout=300, interval=0.05)
        assert stopped, "the run ended before a worker could be stopped"
        pid = watcher.pid_of(stopped[0])
        os.kill(pid, signal.SIGSTOP)
        run.finish(timeout=limit + 120)
        elapsed = time.monotonic() - started
        report = run.report
        counted_once(report, names)
        assert report.unprocessed > 0 and report.killed_workers > 0
        assert elapsed >= limit
        # The stopped worker is gone (its unit restarts it, or the scheduler's worker-ttl drops it): the
        # next run is whole again.
        os.kill(pid, signal.SIGKILL)
        again = analyzer.run_once(now=now + 1)
        counted_once(again, names)
        assert again.unprocessed == 0
    finally:
        watcher.close()
        analyzer.close()


def test_a_worker_joining_mid_run_costs_no_metric(scene, own_dask):
    now, names, settings, baseline, _ = scene
    cluster = own_dask(1)
    watcher = Watcher(cluster)
    analyzer = Analyzer(settings(ANALYZER_EXECUTOR="dask", DASK_SCHEDULER_ADDRESS=cluster.address,
                                 DASK_UNITS_PER_RUN=64))
    run = Run(analyzer, now)
    try:
        run.start()
        assert wait_until(lambda: any(s == "processing" for _, s, _ in watcher.states()) or not run.is_alive(),
                          timeout=300, interval=0.05)
        cluster.add_worker("joining")
        joined_during_run = run.is_alive()
        run.finish(timeout=400)
    finally:
        watcher.close()
        analyzer.close()
    report = run.report
    whole_as_baseline(report, names, baseline)
    assert joined_during_run, "the run ended before the worker joined"
