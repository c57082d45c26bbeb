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
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from skyline_analyzer.analyzer import worker
from skyline_analyzer.analyzer.messages import ChunkDone, WorkerDone, WorkerSummary
from skyline_analyzer.analyzer.outputs import RunReport
from skyline_analyzer.config import Settings
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


def supervise(workers: list[WorkerHandle], started: float, limit: float, notifier: Notifier) -> list[WorkerHandle]:
    """Read messages until every worker is done or ``limit`` seconds have passed; return the late ones."""
    deadline = started + limit
    pending = {w.reader: w for w in workers}
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready = wait(list(pending), timeout=min(remaining, notifier.watchdog_interval or remaining))
        notifier.watchdog()
        for reader in ready:
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


def reap(workers: list[WorkerHandle]) -> None:
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


def collate(workers: list[WorkerHandle], late: list[WorkerHandle], total: int, now: float,
            skipped: Mapping[str, int]) -> RunReport:
    """Add up the workers' counts; ``skipped`` are the exceptions counted before the workers started.

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
            log.error("error :: spin_process %d %s", handle.index, state)
        if missing:
            unprocessed += missing
            log.error("error :: spin_process %d left %d of its %d metrics unprocessed", handle.index, missing,
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
