"""The analysis of one run on Dask distributed (``ANALYZER_EXECUTOR = 'dask'``, docs/scale-out.md).

The parent's run is unchanged around it: discovery before, collation, alerts, dump and Graphite after.
Here the discovered keys are cut into work units of contiguous hash slots
(:mod:`skyline_analyzer.analyzer.units`), each submitted to the scheduler as one task
(:func:`skyline_analyzer.analyzer.unit.analyse_unit`) with the Dask workers on the host of the Redis
master that serves its slots as preferred workers (any other may take it). Accounting is exactly once:

* a unit's result is taken once, keyed by unit id, whatever Dask re-executes (a re-run's duplicate is
  dropped); its timings are written by the parent then, once;
* a unit without a result by ``MAX_ANALYZER_PROCESS_RUNTIME`` is cancelled and all its metrics are counted
  as unprocessed, as is a unit whose task failed;
* what a unit writes to Redis is idempotent within a run: set additions, and a second-order history entry
  keyed by the run's time (:func:`skyline_analyzer.analyzer.history.is_anomalously_anomalous`).

A scheduler that cannot be reached costs that run (every metric unprocessed, one error line); the next
run connects again. Only this module imports Dask, and the daemon imports this module only when Dask is
the configured executor.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, Future, wait

from skyline_analyzer.analyzer import pool, unit, units
from skyline_analyzer.analyzer.messages import UnitDone, WorkerSummary
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.analyzer.run_metrics import RunMetricsRecorder
from skyline_analyzer.config import Settings
from skyline_analyzer.daemon import Daemon
from skyline_analyzer.detection.anomaly import Anomaly

log = logging.getLogger(__name__)

#: Longest single wait for results, in seconds: the watchdog and signals are served between waits.
POLL = 1.0
#: Algorithm error reports logged per run; beyond, one line gives the count.
LOGGED_ERRORS = 20


@dataclass
class UnitHandle:
    """The parent's view of one unit, shaped as :func:`skyline_analyzer.analyzer.pool.collate` reads it."""

    index: int
    assigned: int
    processed: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    summary: WorkerSummary | None = None


def standalone_host(settings: Settings) -> str:
    """The host of a plain Redis: ``REDIS_HOST``, or this machine for the unix socket."""
    return settings.REDIS_HOST or units.THIS_MACHINE


class DaskExecutor:
    """One Dask client, kept between runs and replaced when it has lost the scheduler."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Client | None = None

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close(timeout=self.settings.DASK_CONNECT_TIMEOUT)
            except Exception:
                log.debug("closing the Dask client failed", exc_info=True)
        self.client = None

    def _connect(self) -> Client:
        if self.client is not None and self.client.status == "running":
            return self.client
        self.close()
        self.client = Client(self.settings.DASK_SCHEDULER_ADDRESS, timeout=self.settings.DASK_CONNECT_TIMEOUT,
                             set_as_default=False)
        return self.client

    def run(self, conn: Any, full_keys: list[str], total: int, now: float, skipped: Mapping[str, int],
            daemon: Daemon) -> tuple[RunReport, bool]:
        """Analyse ``full_keys`` on Dask; the run's report and whether every unit updated its exception sets."""
        owners = self._owners(conn)
        plan = units.plan(full_keys, self.settings.DASK_UNITS_PER_RUN, owners)
        handles = {u.unit_id: UnitHandle(u.unit_id, len(u.names)) for u in plan}
        results: dict[int, UnitDone] = {}
        late: list[UnitHandle] = []
        # Connecting to a scheduler that does not answer takes DASK_CONNECT_TIMEOUT, and so may letting go of a
        # lost client, before the connect and after a failure: the watchdog is pinged for up to three times that.
        started = daemon.keep_alive(lambda: self._start(plan, owners, now), 3 * self.settings.DASK_CONNECT_TIMEOUT)
        if started is not None:
            client, futures = started
            pending = self._gather(client, futures, results, daemon)
            late = [handles[i] for i in sorted(pending)]
            if pending:
                log.info("timed out, cancelling %d Dask work units", len(pending))
                self._cancel(client, list(pending.values()))
        for unit_id, done in results.items():
            handles[unit_id].summary = done.summary
            handles[unit_id].anomalies = done.anomalies
        self._write_timings(results.values())
        report = pool.collate(list(handles.values()), late, total, now, skipped, label="Dask work unit")
        complete = len(results) == len(plan) and not any(d.summary.redis_set_errors for d in results.values())
        return report, complete

    def _start(self, plan: Sequence[units.WorkUnit], owners: Sequence[units.SlotRange],
               now: float) -> tuple[Client, dict[int, Future]] | None:
        """Connect and submit the run's units; None (logged, the client let go) when the scheduler cannot."""
        try:
            client = self._connect()
            return client, self._submit(client, plan, owners, now)
        except Exception as exc:
            log.error("error :: the Dask scheduler at %s cannot take the run (%s): every metric is unprocessed",
                      self.settings.DASK_SCHEDULER_ADDRESS, exc)
            self.close()
            return None

    def _owners(self, conn: Any) -> list[units.SlotRange]:
        try:
            return units.slot_owners(conn, standalone_host(self.settings))
        except Exception:
            log.error("error :: could not read the slot map; units are placed on any worker", exc_info=True)
            return []

    def _submit(self, client: Client, plan: Sequence[units.WorkUnit], owners: Sequence[units.SlotRange],
                now: float) -> dict[int, Future]:
        preferred = units.placement(plan, owners, client.scheduler_info(n_workers=-1).get("workers", {}))
        # Keys unique to the run: a unit of an earlier run still known to the scheduler is never reused.
        run = uuid.uuid4().hex[:12]
        futures = {}
        for u in plan:
            # Preferred, not required: any worker takes the unit when those are busy or gone.
            where = {"workers": preferred[u.unit_id], "allow_other_workers": True} if preferred[u.unit_id] else {}
            futures[u.unit_id] = client.submit(unit.analyse_unit, u, self.settings, now,
                                               key=f"skyline-unit-{run}-{u.unit_id}", pure=False, **where)
        return futures

    def _gather(self, client: Client, futures: dict[int, Future], results: dict[int, UnitDone],
                daemon: Daemon) -> dict[int, Future]:
        """Take each unit's result once until all are in or the runtime limit; return the units still pending."""
        started = time.monotonic()
        deadline = started + self.settings.MAX_ANALYZER_PROCESS_RUNTIME
        pending = dict(futures)
        by_future = {f.key: unit_id for unit_id, f in futures.items()}
        while pending:
            now = time.monotonic()
            if now >= deadline:
                break
            daemon.notifier.watchdog()
            daemon.handle_signals()
            try:
                # wait() uses the current client; ours is never made the process-wide default.
                with client.as_current():
                    done, _ = wait(list(pending.values()), timeout=min(POLL, deadline - now),
                                   return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            except Exception as exc:
                log.error("error :: lost the Dask scheduler while waiting for the run's units: %s", exc)
                break
            for future in done:
                unit_id = by_future[future.key]
                pending.pop(unit_id, None)
                self._take(unit_id, future, results)
        if not pending:
            log.info("analyzer :: %d Dask work units completed in %.2f seconds", len(futures),
                     time.monotonic() - started)
        return pending

    def _take(self, unit_id: int, future: Future, results: dict[int, UnitDone]) -> None:
        """Keep the unit's first result; a failed task leaves the unit without one (its metrics unprocessed)."""
        try:
            done = future.result(timeout=self.settings.DASK_CONNECT_TIMEOUT)
        except Exception as exc:
            log.error("error :: Dask work unit %d failed: %s", unit_id, exc)
            return
        finally:
            future.release()
        if not isinstance(done, UnitDone) or done.unit_id != unit_id:
            log.error("error :: Dask work unit %d returned something else; its metrics are unprocessed", unit_id)
            return
        if unit_id in results:
            return
        results[unit_id] = done
        for count, (algorithm, text) in enumerate(done.errors):
            if count < LOGGED_ERRORS:
                log.error("error :: Dask work unit %d (%s) has reported an error with the %s algorithm",
                          unit_id, done.where, algorithm)
                log.error("%s", text)
        if len(done.errors) > LOGGED_ERRORS:
            log.error("error :: Dask work unit %d reported %d algorithm errors", unit_id, len(done.errors))

    def _cancel(self, client: Client, futures: list[Future]) -> None:
        try:
            client.cancel(futures, force=True)
        except Exception as exc:
            log.error("error :: could not cancel the late Dask work units: %s", exc)

    def _write_timings(self, done: Any) -> None:
        if not self.settings.ENABLE_ALGORITHM_RUN_METRICS:
            return
        recorder = RunMetricsRecorder(Path(self.settings.SKYLINE_TMP_DIR))
        for result in done:
            recorder.add(result.timings)
        recorder.flush()

