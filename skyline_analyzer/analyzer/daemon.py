"""The Analyzer daemon's parent loop (docs/run.md): one :meth:`Analyzer.run_once` per run.

Each run: PING (reconnect with back-off), heartbeat, discover ``metrics.unique_metrics``, refresh the
exception sets on their timer, publish the smtp alerter metrics, reset the timing files, fork
``ANALYZER_PROCESSES`` fresh workers (:mod:`skyline_analyzer.analyzer.worker`) and supervise them for at most
``MAX_ANALYZER_PROCESS_RUNTIME`` seconds, collate, alert, write ``ANOMALY_DUMP``, report the timing,
summary and canary metrics to Graphite over one connection, and pace to ``ANALYZER_OPTIMUM_RUN_DURATION``.

Workers are forked fresh every run, so whatever they allocate goes back to the OS when they exit; the
parent keeps nothing from one run to the next but the Redis client.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import redis

from skyline_analyzer import codec, connections, graphite, keys
from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.analyzer import run_metrics as tmpfiles
from skyline_analyzer.analyzer import worker
from skyline_analyzer.config import Settings
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.slices import assigned_slice
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

#: Seconds to wait when there are no metrics or SMEMBERS failed (the original's back-off).
IDLE_WAIT = 10.0
#: Seconds a worker gets to die after SIGTERM before SIGKILL (a stopped process ignores SIGTERM).
KILL_GRACE = 1.0
#: Seconds between checks of the stop flag while sleeping.
STOP_POLL = 0.2
#: Directory a relative ANOMALY_DUMP is resolved against: the package (the original used its source dir).
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class WorkerHandle:
    """The parent's view of one worker: its process, its pipe and what it has reported so far."""

    index: int
    process: multiprocessing.process.BaseProcess
    reader: Connection
    pid: int
    assigned: int
    processed: int = 0
    anomalies: list[list[Any]] = field(default_factory=list)
    summary: worker.WorkerSummary | None = None


@dataclass
class RunReport:
    """The outcome of one run, as logged and sent to Graphite."""

    run_time: float
    total_metrics: int
    total_analyzed: int
    anomalies: list[Anomaly]
    exceptions: dict[str, int]
    anomaly_breakdown: dict[str, int]
    unprocessed: int = 0
    killed_workers: int = 0

    @property
    def total_anomalies(self) -> int:
        return len(self.anomalies)


def anomaly_dump_path(settings: Settings) -> Path:
    """``ANOMALY_DUMP``; a relative path is resolved against the package directory."""
    path = Path(settings.ANOMALY_DUMP)
    return path if path.is_absolute() else PACKAGE_DIR / path


def anomaly_dump_text(settings: Settings, anomalies: Iterable[Anomaly]) -> str:
    """JSON list of ``[value, base_name, timestamp]`` sorted by base_name, optionally as JSONP."""
    records = [a.as_list() for a in sorted(anomalies, key=lambda a: a.base_name)]
    text = json.dumps(records)
    return f"handle_data({text})" if settings.ANOMALY_DUMP_JSONP else text


def write_anomaly_dump(settings: Settings, anomalies: Iterable[Anomaly]) -> Path:
    """Replace ``ANOMALY_DUMP`` atomically (a reader never sees half a file); mode 0644, dirs 0755."""
    path = anomaly_dump_path(settings)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(anomaly_dump_text(settings, anomalies))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def smtp_alerter_metrics(settings: Settings, base_names: Iterable[str]) -> list[str]:
    """Base names matched by at least one alert tuple whose alerter is exactly ``smtp`` (step 6)."""
    patterns = [alert[0] for alert in settings.ALERTS if alert[1] == "smtp"]
    # Step 6 tests regex then substring, without the exact-equality rule.
    return [name for name in base_names
            if any(alerts.match_rule(p, name, exact=False) is not None for p in patterns)]


def canary_figures(raw: bytes | None, run_seconds: float, name: str) -> tuple[float, float | None] | None:
    """``(duration_hours, projected)`` of the canary series, or None when it is absent or unusable.

    ``projected`` is None when the series spans no time (FIX L7: the original sent the string "None").
    """
    if raw is None:
        return None
    series = codec.decode(raw, name)
    if len(series) == 0:
        raise SeriesFormatError(f"{name}: the canary series is empty")
    duration_hours = float(series.timestamps[-1] - series.timestamps[0]) / 3600
    projected = 24 * run_seconds / duration_hours if duration_hours else None
    return duration_hours, projected


class Analyzer:
    """The daemon: :meth:`run_forever` until :meth:`request_stop`, or one :meth:`run_once` at a time."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier if notifier is not None else Notifier()
        self.link = connections.RedisLink(settings)
        self.namespace = settings.graphite_namespace("analyzer")
        self.tmp_dir = Path(settings.SKYLINE_TMP_DIR)
        self.timed_algorithms = list(settings.ALGORITHMS) if settings.ENABLE_ALGORITHM_RUN_METRICS else []
        # A plain flag rather than an Event: it is set from signal handlers, where taking a lock could deadlock.
        self._stop = False
        self._context = multiprocessing.get_context("fork")

    # --- control ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the current run's bookkeeping, then leave :meth:`run_forever` (no new run starts)."""
        self._stop = True

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until a stop is requested, pinging the systemd watchdog meanwhile."""
        deadline = time.monotonic() + seconds
        next_ping = time.monotonic()
        while not self._stop:
            now = time.monotonic()
            if now >= deadline:
                return
            if self.notifier.watchdog_interval is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + self.notifier.watchdog_interval
            time.sleep(min(deadline - now, STOP_POLL))

    def run_forever(
        self, max_runs: int | None = None, on_report: Callable[[RunReport], None] | None = None
    ) -> None:
        """Run and pace until stopped (or ``max_runs`` runs completed); an unexpected error costs one run.

        ``on_report`` is called with every completed run's report (the demo prints them).
        """
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("error :: cannot create SKYLINE_TMP_DIR %s: %s", self.tmp_dir, exc)
        completed = 0
        while not self._stop and (max_runs is None or completed < max_runs):
            self.notifier.watchdog()
            started = time.time()
            try:
                report = self.run_once(started)
            except Exception:
                log.error("error :: the run failed, the next one starts after %.0f s\n%s", IDLE_WAIT,
                          traceback.format_exc())
                self.sleep(IDLE_WAIT)
                continue
            if report is None:
                continue
            completed += 1
            if on_report is not None:
                on_report(report)
            if max_runs is not None and completed >= max_runs:
                break
            elapsed = time.time() - started
            if elapsed < self.settings.ANALYZER_OPTIMUM_RUN_DURATION and not self._stop:
                pause = self.settings.ANALYZER_OPTIMUM_RUN_DURATION - elapsed
                log.info("sleeping for %.2f seconds due to low run time...", pause)
                self.sleep(pause)
        self.link.close()

    # --- one run ------------------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> RunReport | None:
        """One run; None when it could not start (Redis down, no metrics), after the back-off wait."""
        now = time.time() if now is None else now
        conn = self.link.conn
        if not self.link.ping():
            delay = self.link.backoff()
            log.error("error :: Redis is not answering; reconnecting in %.1f s", delay)
            self.sleep(delay)
            self.link.reconnect()
            return None
        try:
            conn.set(keys.ANALYZER_HEARTBEAT, int(now), ex=keys.ANALYZER_HEARTBEAT_TTL)
            members = conn.smembers(keys.unique_metrics(self.settings.FULL_NAMESPACE))
        except (redis.RedisError, OSError) as exc:
            log.error("error :: could not read the metrics from Redis: %s", exc)
            self.sleep(IDLE_WAIT)
            return None
        unique_metrics = [m.decode() if isinstance(m, bytes) else m for m in members]
        if not unique_metrics:
            log.info("no metrics in redis. try adding some - see README")
            self.sleep(IDLE_WAIT)
            return None
        mirage_metrics = self._manage_mirage(conn, unique_metrics, now)
        self._refresh_exception_sets(conn, now)
        self._publish_smtp_alerter_metrics(conn, unique_metrics)
        self._prepare_tmp_dir()

        workers = self._spawn(unique_metrics, now)
        try:
            timed_out = self._supervise(workers, time.monotonic())
        finally:
            self._reap(workers)
        self._report_algorithm_errors([w.pid for w in workers])
        report = self._collate(workers, timed_out, unique_metrics, now)
        self._mark_exception_sets(conn, workers)

        sent_to_mirage = self._alert(conn, report.anomalies, now)
        try:
            write_anomaly_dump(self.settings, report.anomalies)
        except OSError as exc:
            log.error("error :: could not write %s: %s", anomaly_dump_path(self.settings), exc)
        batch = graphite.MetricBatch(self.namespace)
        self._timing_metrics(batch)
        self._stale_digest(conn, now)
        report.run_time = time.time() - now
        self._log_summary(report)
        self._summary_metrics(batch, report, mirage_metrics, sent_to_mirage)
        self._canary(conn, batch, now)
        batch.flush(self.settings)
        return report

    def _manage_mirage(self, conn: Any, unique_metrics: list[str], now: float) -> set[str] | None:
        """Step 5 (the alerting module owns it): the Mirage metrics' full keys, None when Mirage is off."""
        if not self.settings.ENABLE_MIRAGE:
            return None
        try:
            return alerts.manage_mirage_metrics(conn, self.settings, unique_metrics, now)
        except Exception:
            log.error("error :: managing the Mirage metrics failed\n%s", traceback.format_exc())
            return set()

    def _refresh_exception_sets(self, conn: Any, now: float) -> None:
        """Empty the exception sets and the stale-digest set when their timer has expired (FIX L2/L3)."""
        try:
            if not conn.set(keys.ANALYZER_SETS_REFRESH, int(now), ex=keys.ANALYZER_SETS_REFRESH_TTL, nx=True):
                return
            conn.delete(keys.ANALYZER_BORING, keys.ANALYZER_TOO_SHORT, keys.ANALYZER_STALE,
                        keys.ALERT_ON_STALE_METRICS)
            log.info("refreshed the analyzer exception sets and %s", keys.ALERT_ON_STALE_METRICS)
        except (redis.RedisError, OSError) as exc:
            log.error("error :: could not refresh the analyzer exception sets: %s", exc)

    def _publish_smtp_alerter_metrics(self, conn: Any, unique_metrics: Sequence[str]) -> None:
        """Steps 6-7: replace ``analyzer.smtp_alerter_metrics`` in one transaction (guarded: FIX L8)."""
        bases = [keys.base_name(self.settings.FULL_NAMESPACE, m) for m in unique_metrics]
        members = smtp_alerter_metrics(self.settings, bases)
        try:
            pipe = conn.pipeline(transaction=True)
            pipe.delete(keys.SMTP_ALERTER_METRICS)
            if members:
                pipe.sadd(keys.SMTP_ALERTER_METRICS, *members)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.error("error :: could not publish %s: %s", keys.SMTP_ALERTER_METRICS, exc)

    def _prepare_tmp_dir(self) -> None:
        """Steps 8-9: truncate the timing files and delete stale algorithm error files."""
        try:
            tmpfiles.reset_run_metrics(self.tmp_dir, self.timed_algorithms)
            tmpfiles.clean_algorithm_errors(self.tmp_dir)
        except OSError as exc:
            log.error("error :: could not prepare %s: %s", self.tmp_dir, exc)

    def _spawn(self, unique_metrics: list[str], now: float) -> list[WorkerHandle]:
        """Step 10: fork up to ANALYZER_PROCESSES workers, each with a pipe back to the parent."""
        processes = self.settings.ANALYZER_PROCESSES
        workers = []
        for i in range(1, processes + 1):
            if i > len(unique_metrics):
                log.info("WARNING: skyline is set for more cores than needed.")
                break
            reader, writer = self._context.Pipe(duplex=False)
            process = self._context.Process(
                target=worker.spin_process,
                args=(i, unique_metrics, self.settings, now, os.getpid(), writer),
                name=f"spin_process-{i}",
            )
            process.start()
            # Only the worker may hold the write end, so that its exit shows as end-of-file here.
            writer.close()
            assigned = len(assigned_slice(unique_metrics, i, processes))
            workers.append(WorkerHandle(i, process, reader, process.pid, assigned))
        return workers

    def _supervise(self, workers: list[WorkerHandle], started: float) -> list[WorkerHandle]:
        """Step 11: read reports until every worker is done or the runtime limit; return the late ones."""
        deadline = started + self.settings.MAX_ANALYZER_PROCESS_RUNTIME
        pending = {w.reader: w for w in workers}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready = wait(list(pending), timeout=min(remaining, self.notifier.watchdog_interval or remaining))
            self.notifier.watchdog()
            for reader in ready:
                handle = pending[reader]
                try:
                    message = reader.recv()
                except (EOFError, OSError):
                    # Exited without a final report (crashed, or killed by someone else).
                    del pending[reader]
                    continue
                if message[0] == "chunk":
                    handle.processed = message[1]
                    handle.anomalies.extend(message[2])
                else:
                    handle.summary = message[1]
                    del pending[reader]
        elapsed = time.monotonic() - started
        late = list(pending.values())
        if late:
            log.info("timed out, killing all spin_process processes")
        else:
            log.info("analyzer :: %d spin_process/es completed in %.2f seconds", len(workers), elapsed)
        return late

    def _reap(self, workers: list[WorkerHandle]) -> None:
        """Join every worker; one still alive gets SIGTERM, then SIGKILL after KILL_GRACE seconds."""
        for handle in workers:
            process = handle.process
            if handle.summary is not None:
                # It has sent its final report and is exiting.
                process.join(timeout=KILL_GRACE)
            if process.is_alive():
                process.terminate()
                process.join(timeout=KILL_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
            handle.reader.close()
            process.close()

    def _report_algorithm_errors(self, pids: list[int]) -> None:
        """Step 12: log and delete the error files the workers left."""
        for pid, algorithm, text in tmpfiles.take_algorithm_errors(self.tmp_dir, pids, list(self.settings.ALGORITHMS)):
            log.error("error :: spin_process with pid %d has reported an error with the %s algorithm", pid, algorithm)
            log.error("%s", text)

    def _collate(
        self, workers: list[WorkerHandle], late: list[WorkerHandle], unique_metrics: list[str], now: float
    ) -> RunReport:
        """Step 13 and 20: sum the workers' counts; metrics of a worker that did not finish count as analysed."""
        exceptions: Counter = Counter()
        breakdown: Counter = Counter()
        anomalies = []
        unprocessed = 0
        for handle in workers:
            anomalies.extend(Anomaly(v, name, ts, tuple(triggered)) for v, name, ts, triggered in handle.anomalies)
            if handle.summary is not None:
                exceptions.update(handle.summary.exceptions)
                breakdown.update(handle.summary.anomaly_breakdown)
                missing = handle.assigned - handle.summary.processed
            else:
                missing = handle.assigned - handle.processed
                state = "was killed at the runtime limit" if handle in late else "exited without reporting"
                log.error("error :: spin_process %d %s", handle.index, state)
            if missing:
                unprocessed += missing
                log.error("error :: spin_process %d left %d of its %d metrics unprocessed", handle.index, missing,
                          handle.assigned)
        total = len(unique_metrics)
        return RunReport(
            run_time=time.time() - now,
            total_metrics=total,
            total_analyzed=total - sum(exceptions.values()),
            anomalies=anomalies,
            exceptions=dict(exceptions),
            anomaly_breakdown=dict(breakdown),
            unprocessed=unprocessed,
            killed_workers=len(late),
        )

    def _mark_exception_sets(self, conn: Any, workers: list[WorkerHandle]) -> None:
        """Keep one ``_updated_at_<UTC time>`` marker per exception set (FIX L3: markers do not pile up)."""
        if any(w.summary is None or w.summary.redis_set_errors for w in workers):
            return
        marker = keys.UPDATED_AT_MARKER + time.strftime("%Y%m%d%H%M%S", time.gmtime())
        try:
            for key in worker.EXCEPTION_SETS.values():
                old = list(conn.sscan_iter(key, match=keys.UPDATED_AT_MARKER + "*"))
                pipe = conn.pipeline(transaction=True)
                if old:
                    pipe.srem(key, *old)
                pipe.sadd(key, marker)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.error("error :: could not mark the analyzer exception sets: %s", exc)

    def _alert(self, conn: Any, anomalies: list[Anomaly], now: float) -> int:
        """Step 16 (the alerting module owns it): the count handed to Mirage; a failure never costs the run."""
        if not self.settings.ENABLE_ALERTS:
            log.info("alerts not enabled")
            return 0
        try:
            return alerts.send_alerts(conn, self.settings, anomalies, now)
        except Exception:
            log.error("error :: alerting failed\n%s", traceback.format_exc())
            return 0

    def _stale_digest(self, conn: Any, now: float) -> None:
        """Step 19 (the alerting module owns it); a failure is logged (FIX L1)."""
        if not self.settings.ALERT_ON_STALE_METRICS:
            return
        try:
            alerts.send_stale_digest(conn, self.settings, now)
        except Exception:
            log.error("error :: the stale metrics digest failed\n%s", traceback.format_exc())

    def _timing_metrics(self, batch: graphite.MetricBatch) -> None:
        """Step 18: ``algorithm_breakdown.<alg>.timing.{times_run,total_time,median_time}``."""
        for algorithm, timing in tmpfiles.collect_run_metrics(self.tmp_dir, self.timed_algorithms).items():
            log.info("algorithm timing - %s - total: %.6f - median: %.6f", algorithm, timing.total_time,
                     timing.median_time)
            prefix = f"algorithm_breakdown.{algorithm}.timing"
            batch.add(f"{prefix}.times_run", timing.times_run)
            batch.add(f"{prefix}.total_time", timing.total_time)
            batch.add(f"{prefix}.median_time", timing.median_time)

    def _log_summary(self, report: RunReport) -> None:
        """Step 20's fixed-label lines (consumers parse them)."""
        log.info("seconds to run     :: %.2f", report.run_time)
        log.info("total metrics      :: %d", report.total_metrics)
        log.info("total analyzed     :: %d", report.total_analyzed)
        log.info("total anomalies    :: %d", report.total_anomalies)
        log.info("exception stats    :: %s", report.exceptions)
        log.info("anomaly breakdown  :: %s", report.anomaly_breakdown)

    def _summary_metrics(
        self, batch: graphite.MetricBatch, report: RunReport, mirage: set[str] | None, sent_to_mirage: int
    ) -> None:
        """Step 21 (docs/run.md#step-21-graphite-metrics): run figures, non-zero exception counts, breakdown."""
        batch.add("run_time", f"{report.run_time:.2f}")
        batch.add("total_analyzed", report.total_analyzed)
        batch.add("total_anomalies", report.total_anomalies)
        batch.add("total_metrics", report.total_metrics)
        for key, count in report.exceptions.items():
            if count:
                batch.add(f"exceptions.{key}", count)
        for algorithm, count in report.anomaly_breakdown.items():
            batch.add(f"anomaly_breakdown.{algorithm}", count)
        if mirage is not None:
            batch.add("sent_to_mirage", sent_to_mirage)
            batch.add("mirage_metrics", len(mirage))

    def _canary(self, conn: Any, batch: graphite.MetricBatch, now: float) -> None:
        """Step 22: the canary's ``duration`` and ``projected``; any failure is logged (FIX L7)."""
        name = keys.metric(self.settings.FULL_NAMESPACE, self.settings.CANARY_METRIC)
        try:
            figures = canary_figures(conn.get(name), time.time() - now, name)
        except (redis.RedisError, OSError, SeriesFormatError) as exc:
            log.error("error :: canary %s unusable: %s", name, exc)
            return
        if figures is None:
            return
        duration, projected = figures
        log.info("canary duration    :: %.2f", duration)
        batch.add("duration", str(duration))
        if projected is None:
            log.error("error :: canary %s spans no time; projected not sent", name)
        else:
            batch.add("projected", str(projected))
