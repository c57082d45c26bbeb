"""The worker pool of one run: fork the workers, read their messages, reap them, add up their counts.

Workers are forked fresh every run, so whatever they allocate goes back to the OS when they exit. A worker
that dies or is killed at ``MAX_ANALYZER_PROCESS_RUNTIME`` contributes the anomalies it already sent but no
counts; its metrics not analysed are reported as ``unprocessed`` (docs/analyzer.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from skyline_analyzer.analyzer import worker
from skyline_analyzer.analyzer.messages import ChunkDone, WorkerDone, WorkerSummary
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.config import Settings
from skyline_analyzer.daemon import Daemon
from skyline_analyzer.detection.anomaly import Anomaly
from skyline_analyzer.slices import assigned_slice
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

#: Seconds a worker gets to die after SIGTERM before SIGKILL (a stopped process ignores SIGTERM).
KILL_GRACE = 1.0


@dataclass
class WorkerHandle:
    """The parent's view of one worker: its process, its pipe and what it has reported so far."""

    index: int
    process: multiprocessing.process.BaseProcess
    reader: Connection
    pid: int
    assigned: int
    processed: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    summary: WorkerSummary | None = None


def spawn(context: multiprocessing.context.BaseContext, settings: Settings, unique_metrics: list[str],
          now: float) -> list[WorkerHandle]:
    """Fork up to ANALYZER_PROCESSES workers, each with a pipe back to the parent."""
    processes = settings.ANALYZER_PROCESSES
    workers = []
    for i in range(1, processes + 1):
        if i > len(unique_metrics):
            log.info("WARNING: skyline is set for more cores than needed.")
            break
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=worker.spin_process,
            args=(i, unique_metrics, settings, now, os.getpid(), writer),
            name=f"spin_process-{i}",
        )
        process.start()
        # Only the worker may hold the write end, so that its exit shows as end-of-file here.
        writer.close()
        assigned = len(assigned_slice(unique_metrics, i, processes))
        workers.append(WorkerHandle(i, process, reader, process.pid, assigned))
    return workers


def supervise(workers: list[WorkerHandle], started: float, limit: float, daemon: Daemon) -> list[WorkerHandle]:
    """Read messages until every worker is done or ``limit`` seconds have passed; return the late ones.

    The wait also ends when a signal arrives (``daemon.wakeup_fd``), so a stop or a log reopen is acted on
    at once; the workers keep running. The watchdog is pinged at its interval meanwhile.
    """
    deadline = started + limit
    pending = {w.reader: w for w in workers}
    wakeup = daemon.wakeup_fd
    interval = daemon.notifier.watchdog_interval
    next_ping = time.monotonic()
    while pending:
        now = time.monotonic()
        if now >= deadline:
            break
        if interval is not None and now >= next_ping:
            daemon.notifier.watchdog()
            next_ping = now + interval
        watched: list[Connection | int] = [*pending, *([] if wakeup is None else [wakeup])]
        ready = wait(watched, timeout=min(deadline, next_ping if interval is not None else deadline) - now)
        daemon.handle_signals()
        for reader in ready:
            if not isinstance(reader, Connection):
                continue
            handle = pending[reader]
            try:
                message = reader.recv()
            except (EOFError, OSError):
                # Exited without a final report (crashed, or killed by someone else).
                del pending[reader]
                continue
            if isinstance(message, ChunkDone):
                handle.processed = message.processed
                handle.anomalies.extend(message.anomalies)
            elif isinstance(message, WorkerDone):
                handle.summary = message.summary
                del pending[reader]
    elapsed = time.monotonic() - started
    late = list(pending.values())
    if late:
        log.info("timed out, killing all spin_process processes")
    else:
        log.info("analyzer :: %d spin_process/es completed in %.2f seconds", len(workers), elapsed)
    return late


def reap(workers: list[WorkerHandle], notifier: Notifier) -> None:
    """Join every worker; those still alive get SIGTERM, then SIGKILL after KILL_GRACE seconds.

    Each stage waits for all the workers together, so reaping takes at most about 2 * KILL_GRACE however
    many workers are late; the watchdog is pinged before each.
    """
    notifier.watchdog()
    finishing = [h.process for h in workers if h.summary is not None]
    _join_all(finishing, KILL_GRACE)
    alive = [h.process for h in workers if h.process.is_alive()]
    for process in alive:
        process.terminate()
    notifier.watchdog()
    _join_all(alive, KILL_GRACE)
    for process in alive:
        if process.is_alive():
            process.kill()
            process.join()
    for handle in workers:
        handle.reader.close()
        handle.process.close()


def _join_all(processes: list[multiprocessing.process.BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))


def collate(workers: Sequence[WorkerHandle], late: Sequence[WorkerHandle], total: int, now: float,
            skipped: Mapping[str, int], label: str = "spin_process") -> RunReport:
    """Add up the workers' counts; ``skipped`` are the exceptions counted before the workers started.

    A Dask run passes its units (same fields: index, assigned, processed, anomalies, summary), named
    ``label`` in the log lines.

    ``total_analyzed`` counts only metrics actually analysed: the total less every exception and less the
    metrics a dead or killed worker left (FIX of v1.2.8, which counted those as analysed).
    """
    exceptions: Counter[str] = Counter({str(kind): count for kind, count in skipped.items() if count})
    breakdown: Counter[str] = Counter()
    anomalies: list[Anomaly] = []
    unprocessed = 0
    for handle in workers:
        anomalies.extend(handle.anomalies)
        if handle.summary is not None:
            exceptions.update({str(kind): count for kind, count in handle.summary.exceptions.items()})
            breakdown.update(handle.summary.anomaly_breakdown)
            missing = handle.assigned - handle.summary.processed
        else:
            missing = handle.assigned - handle.processed
            state = "was killed at the runtime limit" if handle in late else "exited without reporting"
            log.error("error :: %s %d %s", label, handle.index, state)
        if missing:
            unprocessed += missing
            log.error("error :: %s %d left %d of its %d metrics unprocessed", label, handle.index, missing,
                      handle.assigned)
    return RunReport(
        run_time=time.time() - now,
        total_metrics=total,
        total_analyzed=total - sum(exceptions.values()) - unprocessed,
        anomalies=anomalies,
        exceptions=dict(exceptions),
        anomaly_breakdown=dict(breakdown),
        unprocessed=unprocessed,
        killed_workers=len(late),
    )
