"""The Analyzer daemon's parent loop (docs/run.md): one :meth:`Analyzer.run_once` per run.

Each run: PING (reconnect with back-off), heartbeat, discover ``metrics.unique_metrics``, refresh the
exception sets on their timer, publish the smtp alerter metrics, reset the timing files, fork
``ANALYZER_PROCESSES`` fresh workers (:mod:`skyline_analyzer.analyzer.pool`) and supervise them for at most
``MAX_ANALYZER_PROCESS_RUNTIME`` seconds, collate, alert, write ``ANOMALY_DUMP``, report the timing,
summary and canary metrics to Graphite over one connection, and pace to ``ANALYZER_OPTIMUM_RUN_DURATION``.

Workers are forked fresh every run, so whatever they allocate goes back to the OS when they exit; the
parent keeps nothing from one run to the next but the Redis client.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import redis

from skyline_analyzer import connections, graphite, keys
from skyline_analyzer.alerting import dispatch as alerts
from skyline_analyzer.alerting import mirage, stale
from skyline_analyzer.alerting.rules import alert_rules
from skyline_analyzer.analyzer import outputs, pool, run_metrics, worker
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.config import Settings
from skyline_analyzer.daemon import Daemon
from skyline_analyzer.detection import engine
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.exceptions import ExceptionKind, SeriesFormatError, UnsafeDirectoryError
from skyline_analyzer.matching import MatchCache
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

#: Seconds to wait when there are no metrics or SMEMBERS failed (the original's back-off).
IDLE_WAIT = 10.0
#: Elements SSCAN examines per call when looking for the exception sets' markers.
SCAN_COUNT = 10_000
#: Undecodable set members logged one by one per run; beyond, one line gives the count.
LOGGED_UNDECODABLE = 5


def decode_members(members: Iterable[bytes | str]) -> tuple[list[str], int]:
    """The UTF-8 names among ``metrics.unique_metrics``' members, and the count of the others.

    A member that is not UTF-8 cannot name a metric any Skyline tool can read; it is skipped, counted as
    ``UndecodableName`` and logged (escaped, bounded), so that one bad member cannot stop every run.
    """
    try:
        # Every member UTF-8 bytes (the usual case): one pass in C.
        return list(map(bytes.decode, members)), 0
    except (UnicodeDecodeError, TypeError):
        pass
    names, undecodable = [], 0
    for member in members:
        if isinstance(member, str):
            names.append(member)
            continue
        try:
            names.append(member.decode())
        except UnicodeDecodeError:
            undecodable += 1
            if undecodable <= LOGGED_UNDECODABLE:
                log.error("error :: skipping a member of the unique metrics set that is not UTF-8: %s",
                          member)
    if undecodable > LOGGED_UNDECODABLE:
        log.error("error :: %d members of the unique metrics set are not UTF-8", undecodable)
    return names, undecodable


def smtp_alerter_matcher(settings: Settings) -> Callable[[str], bool]:
    """Does at least one alert tuple whose alerter is exactly ``smtp`` match a full key's base name (step 6)?"""
    rules = [rule for rule in alert_rules(settings) if rule.alerter == "smtp"]
    namespace = settings.FULL_NAMESPACE

    def matched(full_key: str) -> bool:
        base = keys.base_name(namespace, full_key)
        # Step 6 tests regex then substring, without the exact-equality rule.
        return any(rule.match(base, exact=False) is not None for rule in rules)

    return matched


class Analyzer(Daemon):
    """The daemon: :meth:`run_forever` until a stop is requested, or one :meth:`run_once` at a time.

    Signals, waits and watchdog pings come from :class:`skyline_analyzer.daemon.Daemon`: a SIGTERM during a
    run lets the run finish its bookkeeping, and no new run starts.
    """

    app = "analyzer"
    stop_note = "stopping after the current run's bookkeeping"

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        super().__init__(notifier if notifier is not None else Notifier())
        self.settings = settings
        self.link = connections.RedisLink(settings)
        self.namespace = settings.graphite_namespace("analyzer")
        self.tmp_dir = Path(settings.SKYLINE_TMP_DIR)
        self.timed_algorithms = list(settings.ALGORITHMS) if settings.ENABLE_ALGORITHM_RUN_METRICS else []
        self._context = multiprocessing.get_context("fork")
        self._smtp_matches = MatchCache(smtp_alerter_matcher(settings), settings.ALERT_MATCH_CACHE_SIZE)
        # The smtp alerter metrics as last published; None when unknown (start, or a failed write).
        self._published: set[str] | None = None
        # The Dask executor, keeping one client between runs; None with the local pool. Dask and the slow
        # imports of the algorithms are made here rather than in the first run: each takes a second or more
        # on a busy machine, and before READY=1 that counts against systemd's start timeout instead of
        # leaving the watchdog without a ping.
        self._dask: Any = None
        if settings.ANALYZER_EXECUTOR == "dask":
            from skyline_analyzer.analyzer.dask_executor import DaskExecutor

            self._dask = DaskExecutor(settings)
        engine.preload(settings)

    def run_forever(
        self, max_runs: int | None = None, on_report: Callable[[RunReport], None] | None = None
    ) -> None:
        """Run and pace until stopped (or ``max_runs`` runs completed); an unexpected error costs one run.

        ``on_report`` is called with every completed run's report (the demo prints them).
        """
        completed = 0
        while not self.stop_requested and (max_runs is None or completed < max_runs):
            self.checkpoint()
            started = time.time()
            try:
                report = self.run_once(started)
            except Exception:
                log.error("error :: the run failed, the next one starts after %.0f s", IDLE_WAIT, exc_info=True)
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
            if elapsed < self.settings.ANALYZER_OPTIMUM_RUN_DURATION and not self.stop_requested:
                pause = self.settings.ANALYZER_OPTIMUM_RUN_DURATION - elapsed
                log.info("sleeping for %.2f seconds due to low run time...", pause)
                self.sleep(pause)
        self.handle_signals()
        self.close()

    def close(self) -> None:
        """Let go of the Redis client and, with the Dask executor, of the Dask client (a later run connects
        again)."""
        if self._dask is not None:
            self._dask.close()
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
        unique_metrics, undecodable = decode_members(members)
        if not members:
            log.info("no metrics in redis. try adding some - see README")
            self.sleep(IDLE_WAIT)
            return None
        mirage_metrics = self._manage_mirage(conn, unique_metrics, now)
        self._refresh_exception_sets(conn, now)
        self._publish_smtp_alerter_metrics(conn, unique_metrics)
        self._prepare_tmp_dir()
        self.checkpoint()

        skipped = {ExceptionKind.UNDECODABLE_NAME: undecodable}
        if self._dask is not None:
            report, sets_complete = self._dask.run(conn, unique_metrics, len(members), now, skipped, self)
        else:
            workers = pool.spawn(self._context, self.settings, unique_metrics, now)
            try:
                late = pool.supervise(workers, time.monotonic(), self.settings.MAX_ANALYZER_PROCESS_RUNTIME, self)
            finally:
                pool.reap(workers, self.notifier)
            self.checkpoint()
            self._report_algorithm_errors([w.pid for w in workers])
            report = pool.collate(workers, late, len(members), now, skipped)
            sets_complete = all(w.summary is not None and not w.summary.redis_set_errors for w in workers)
        if sets_complete:
            self._mark_exception_sets(conn)
        self.checkpoint()

        sent_to_mirage = self._alert(conn, report.anomalies, now)
        self.checkpoint()
        try:
            outputs.write_anomaly_dump(self.settings, report.anomalies)
        except OSError as exc:
            log.error("error :: could not write %s: %s", outputs.anomaly_dump_path(self.settings), exc)
        self.checkpoint()
        batch = graphite.MetricBatch(self.namespace)
        outputs.timing_metrics(batch, self.tmp_dir, self.timed_algorithms)
        self._stale_digest(conn, now)
        self.checkpoint()
        report.run_time = time.time() - now
        outputs.log_summary(report)
        self.notifier.status(f"last run: {report.total_metrics} metrics, {report.total_anomalies} anomalies, "
                             f"{report.run_time:.2f} s")
        try:
            outputs.write_run_report(self.settings, report, now)
        except OSError as exc:
            log.error("error :: could not write %s: %s", outputs.run_report_path(self.settings), exc)
        outputs.summary_metrics(batch, report, self.settings.ALGORITHMS, mirage_metrics, sent_to_mirage)
        self._canary(conn, batch, now)
        # Carbon's connect and send timeouts bound the send; the watchdog is pinged while it waits.
        self.keep_alive(lambda: batch.flush(self.settings), graphite.LONGEST_SEND)
        return report

    def _manage_mirage(self, conn: Any, unique_metrics: list[str], now: float) -> set[str] | None:
        """Step 5 (the alerting module owns it): the Mirage metrics' full keys, None when Mirage is off."""
        if not self.settings.ENABLE_MIRAGE:
            return None
        try:
            return mirage.manage_mirage_metrics(conn, self.settings, unique_metrics, now)
        except Exception:
            log.error("error :: managing the Mirage metrics failed", exc_info=True)
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
        """Steps 6-7: ``analyzer.smtp_alerter_metrics`` is made the base names an smtp rule matches (FIX L8).

        Matching is remembered per name (:class:`skyline_analyzer.matching.MatchCache`). v1.2.8 deleted and
        re-added the whole set every run; here one transaction removes and adds only the names that changed
        since the last publication and returns the set's size. When that size is not the expected one (the
        first run, a failed write, or someone else changed the set) the set is replaced whole, as in v1.2.8.
        """
        namespace = self.settings.FULL_NAMESPACE
        members = {keys.base_name(namespace, name) for name in self._smtp_matches.select(unique_metrics)}
        published, self._published = self._published, None
        try:
            if published is not None:
                pipe = conn.pipeline(transaction=True)
                if gone := published - members:
                    pipe.srem(keys.SMTP_ALERTER_METRICS, *gone)
                if added := members - published:
                    pipe.sadd(keys.SMTP_ALERTER_METRICS, *added)
                pipe.scard(keys.SMTP_ALERTER_METRICS)
                if pipe.execute()[-1] == len(members):
                    self._published = members
                    return
            pipe = conn.pipeline(transaction=True)
            pipe.delete(keys.SMTP_ALERTER_METRICS)
            if members:
                pipe.sadd(keys.SMTP_ALERTER_METRICS, *members)
            pipe.execute()
            self._published = members
        except (redis.RedisError, OSError) as exc:
            log.error("error :: could not publish %s: %s", keys.SMTP_ALERTER_METRICS, exc)

    def _prepare_tmp_dir(self) -> None:
        """Steps 8-9: truncate the timing files and delete stale algorithm error files."""
        try:
            run_metrics.reset_run_metrics(self.tmp_dir, self.timed_algorithms)
            run_metrics.clean_algorithm_errors(self.tmp_dir)
        except (OSError, UnsafeDirectoryError) as exc:
            log.error("error :: could not prepare %s: %s", self.tmp_dir, exc)

    def _report_algorithm_errors(self, pids: list[int]) -> None:
        """Step 12: log and delete the error files the workers left."""
        algorithms = list(self.settings.ALGORITHMS)
        for pid, algorithm, text in run_metrics.take_algorithm_errors(self.tmp_dir, pids, algorithms):
            log.error("error :: spin_process with pid %d has reported an error with the %s algorithm", pid, algorithm)
            log.error("%s", text)

    def _mark_exception_sets(self, conn: Any) -> None:
        """Keep one ``_updated_at_<UTC time>`` marker per exception set (FIX L3: markers do not pile up).

        Called only when every worker (or unit) reported and updated its sets.
        """
        marker = keys.UPDATED_AT_MARKER + time.strftime("%Y%m%d%H%M%S", time.gmtime())
        try:
            for key in worker.EXCEPTION_SETS.values():
                # A large COUNT: the set holds a name per metric, the markers are few; a few round trips.
                old = list(conn.sscan_iter(key, match=keys.UPDATED_AT_MARKER + "*", count=SCAN_COUNT))
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
            return alerts.send_alerts(conn, self.settings, anomalies, now, self.notifier)
        except Exception:
            log.error("error :: alerting failed", exc_info=True)
            return 0

    def _stale_digest(self, conn: Any, now: float) -> None:
        """Step 19 (the alerting module owns it); a failure is logged (FIX L1)."""
        if not self.settings.ALERT_ON_STALE_METRICS:
            return
        try:
            stale.send_stale_digest(conn, self.settings, now, self.notifier)
        except Exception:
            log.error("error :: the stale metrics digest failed", exc_info=True)

    def _canary(self, conn: Any, batch: graphite.MetricBatch, now: float) -> None:
        """Step 22: the canary's ``duration`` and ``projected``; any failure is logged (FIX L7)."""
        name = keys.metric(self.settings.FULL_NAMESPACE, self.settings.CANARY_METRIC)
        try:
            figures = outputs.canary_figures(conn.get(name), time.time() - now, name)
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
