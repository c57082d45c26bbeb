"""The Horizon agent: starts and supervises listeners, workers, Roomba (docs/horizon.md#process-model-signals-log).

Process model, as the original: one process per listener (pickle, UDP and, beyond it, plaintext),
``WORKER_PROCESSES`` worker processes, bounded queues of ``MAX_QUEUE_SIZE`` chunks in all between them, and
a Roomba thread in the agent that forks the vacuum processes each pass. Unlike the original's one shared
queue, each worker has its own queue (``ceil(MAX_QUEUE_SIZE / WORKER_PROCESSES)`` chunks) and each metric
one worker, which keeps a metric's datapoints in order (see :mod:`.chunker`). The agent, rather than a
canary worker, samples the queue sizes for ``worker.queue_size``.

Differences, each for robustness: the sockets are bound by the agent before anything is forked, so a port
in use stops start-up with a message instead of leaving a process-less listener. When a child dies (the
original left it dead) the agent starts a new *generation*: it stops the other children, makes new queues
and starts every child again. Only that is safe, because a process killed inside a queue operation leaves
that queue's lock held for ever; the datapoints still in the old queues are lost and the log says so.
On stop the listeners queue what they hold, and the workers write everything queued before they exit.
Every ``HORIZON_REPORT_INTERVAL`` seconds (and once at stop) the agent logs the shared counters, summed over
the interval, and sends them to Graphite as ``skyline.horizon.<SERVER_METRICS_NAME>.<counter>``, stamped with
the interval's start (docs/graphite.md#horizons-counters).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
from typing import Any

from skyline_analyzer import graphite
from skyline_analyzer.config import Settings
from skyline_analyzer.daemon import Daemon
from skyline_analyzer.horizon import listener, long_history, roomba, worker
from skyline_analyzer.horizon.counters import PROTOCOLS, Counters, interval_start, report_metrics
from skyline_analyzer.horizon.stop_flag import Flag, child_main
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

#: Seconds between checks that every child is alive.
SUPERVISE_SECONDS = 1.0
#: Seconds the listeners, then the workers, get to finish on stop before they are terminated.
STOP_TIMEOUT = 10.0
#: The placeholder v1.2.8 ships for HORIZON_IP.
HORIZON_IP_PLACEHOLDER = "YOUR_SKYLINE_INTSANCE_IP_ADDRESS"


def validate(settings: Settings) -> list[str]:
    """Problems only Horizon cares about (every setting's own type and range are checked by ``config.load``)."""
    problems = []
    if settings.HORIZON_IP == HORIZON_IP_PLACEHOLDER:
        problems.append(f"HORIZON_IP is still the placeholder {HORIZON_IP_PLACEHOLDER!r}: set the address to listen on")
    if settings.PICKLE_PORT == settings.PLAINTEXT_PORT:
        problems.append("PICKLE_PORT and PLAINTEXT_PORT must differ (both are TCP)")
    return problems


class Horizon(Daemon):
    """One Horizon instance: :meth:`start`, then :meth:`run` until a stop, then :meth:`shutdown`.

    Signals come from :class:`skyline_analyzer.daemon.Daemon`: SIGTERM or a first Ctrl-C ends :meth:`run`;
    :meth:`abort` kills the children after a second Ctrl-C.

    Parameters
    ----------
    settings
        Validated settings.
    roomba_interval
        Seconds between Roomba passes.
    """

    app = "horizon"
    stop_note = "stopping: the listeners queue what they hold, the workers write everything queued"

    def __init__(self, settings: Settings, *, roomba_interval: float = roomba.PASS_INTERVAL,
                 notifier: Notifier | None = None) -> None:
        super().__init__(notifier if notifier is not None else Notifier({}))
        self.settings = settings
        self.report_interval: int = settings.HORIZON_REPORT_INTERVAL
        # The start of the interval the counters are being summed for, on the wall clock as carbon's buckets.
        self.interval_start = interval_start(time.time(), self.report_interval)
        self.roomba_interval = roomba_interval
        self.context = multiprocessing.get_context("fork")
        self.sockets: dict[str, socket.socket] = {}
        self.children: dict[str, Any] = {}
        self.queues: list[Any] = []
        self.queue_sizes: list[int] = []
        self.roomba_stop = threading.Event()
        self.roomba_thread: threading.Thread | None = None
        self.keeper_thread: threading.Thread | None = None
        # One row per worker and per listener, and the agent's own, last.
        self.counters = Counters(settings.WORKER_PROCESSES + len(PROTOCOLS) + 1, self.context)
        self.own_counters = self.counters.row(self.counters.rows - 1)
        self.listen_stop = Flag(self.context)
        self.work_stop = Flag(self.context)

    def start(self) -> None:
        """Bind every listener (OSError if one cannot), then start the processes and Roomba."""
        listener.raise_descriptor_limit(self.settings)
        for protocol in PROTOCOLS:
            try:
                self.sockets[protocol] = listener.bind(protocol, self.settings)
            except OSError:
                self._close_sockets()
                raise
        self._start_children()
        if self.queued() is None:
            log.warning("horizon :: this platform has no queue qsize(); worker.queue_size is not reported")
        self.roomba_thread = threading.Thread(
            target=roomba.run_roomba, args=(self.settings, self.roomba_stop, self.context, self.roomba_interval),
            name="roomba", daemon=True)
        self.roomba_thread.start()
        if self.settings.SECOND_STAGE_ENABLED:
            self.keeper_thread = threading.Thread(target=long_history.run_keeper,
                                                  args=(self.settings, self.roomba_stop), name="long-history",
                                                  daemon=True)
            self.keeper_thread.start()
        addresses = ", ".join(f"{p} {s.getsockname()[0]}:{s.getsockname()[1]}" for p, s in self.sockets.items())
        log.info("horizon :: started %d workers; listening on %s", self.settings.WORKER_PROCESSES, addresses)

    def _start_children(self) -> None:
        """A generation: fresh flags and queues, then the workers and the listeners."""
        workers = self.settings.WORKER_PROCESSES
        per_worker = -(-self.settings.MAX_QUEUE_SIZE // workers)
        self.queues = [self.context.Queue(maxsize=per_worker) for _ in range(workers)]
        self.listen_stop = Flag(self.context)
        self.work_stop = Flag(self.context)
        parent = os.getpid()
        for index in range(workers):
            self._spawn(f"worker-{index}", worker.run_worker, index, self.settings, self.queues[index],
                        self.counters.row(index), self.work_stop, parent)
        for offset, protocol in enumerate(PROTOCOLS):
            self._spawn(f"listen-{protocol}", listener.run_listener, protocol, self.sockets[protocol], self.settings,
                        self.queues, self.counters.row(workers + offset), self.listen_stop, parent)

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        process = self.context.Process(target=child_main, args=(target, *args), name=f"horizon-{name}")
        process.start()
        self.children[name] = process

    def supervise(self) -> None:
        """When a child has died, stop the rest and start a new generation (see the module's notes)."""
        dead = {name: process for name, process in self.children.items() if not process.is_alive()}
        if not dead:
            return
        for name, process in dead.items():
            log.error("horizon :: %s (pid %s) exited with code %s", name, process.pid, process.exitcode)
        self.own_counters.add("agent.child_deaths", len(dead))
        lost = self.queued()
        self._stop_children()
        log.error("horizon :: started every listener and worker again; chunks possibly lost in the old "
                  "queues: %s", "unknown" if lost is None else lost)
        self._start_children()

    def queued(self) -> int | None:
        """Chunks waiting in all the worker queues (None where the platform cannot tell)."""
        try:
            return sum(q.qsize() for q in self.queues)
        except NotImplementedError:
            return None

    def report(self) -> dict[str, int | float]:
        """Log and send the counters summed since the last report, stamped with the start of their interval.

        Returns what was reported. A report at stop is stamped with the start of the interval in progress,
        the one after the last periodic report's, so neither overwrites the other in carbon.
        """
        now = time.time()
        metrics = report_metrics(self.counters.take(), self.queue_sizes)
        self.queue_sizes = []
        # One argument per name and value: the log bounds each argument, and the line holds over 40 counters.
        log.info("horizon :: " + ", ".join(["%s %s"] * len(metrics)), *(part for pair in metrics for part in pair))
        batch = graphite.MetricBatch(self.settings.graphite_namespace("horizon"))
        for name, value in metrics:
            batch.add(name, value)
        batch.flush(self.settings, timestamp=self.interval_start)
        self.interval_start = interval_start(now, self.report_interval)
        return dict(metrics)

    def run(self) -> None:
        """Supervise and report until a stop is requested (:attr:`stop_requested`)."""
        while not self.stop_requested:
            self.wait(SUPERVISE_SECONDS)
            if self.stop_requested:
                break
            self.supervise()
            # Supervising is what keeps Horizon serving, so a stuck supervisor must stop the pings.
            self.notifier.watchdog()
            size = self.queued()
            if size is not None:
                self.queue_sizes.append(size)
            # Once the interval is over; a clock set back also ends it, rather than silencing the reports.
            if not self.interval_start <= time.time() < self.interval_start + self.report_interval:
                reported = self.report()
                # Only from the loop: the last report, at stop, comes after STOPPING=1.
                self.notifier.status("last report: " + ", ".join(f"{name} {value}" for name, value in reported.items()))

    def shutdown(self) -> dict[str, int | float]:
        """Stop in order (listeners flush, workers drain their queues), report a last time, release everything."""
        log.info("horizon :: stopping")
        self.roomba_stop.set()
        self._stop_children()
        for thread in (self.roomba_thread, self.keeper_thread):
            if thread is not None:
                thread.join(timeout=STOP_TIMEOUT)
        final = self.report()
        self._close_sockets()
        log.info("horizon :: stopped")
        return final

    def abort(self) -> None:
        """Stop at once (a second Ctrl-C): kill every child, release the sockets; what is queued is lost."""
        self.roomba_stop.set()
        for name, process in self.children.items():
            if process.is_alive():
                log.error("horizon :: killing %s (pid %s)", name, process.pid)
                process.kill()
            process.join()
        self.children.clear()
        self._close_sockets()

    def _stop_children(self) -> None:
        """The listeners first (they queue what they hold), then the workers (they write what is queued)."""
        for prefix, flag in (("listen-", self.listen_stop), ("worker-", self.work_stop)):
            flag.set()
            deadline = time.monotonic() + STOP_TIMEOUT
            for name, process in self.children.items():
                if name.startswith(prefix):
                    process.join(timeout=max(0.0, deadline - time.monotonic()))
                    if process.is_alive():
                        log.error("horizon :: %s did not stop in %ss; killing it", name, STOP_TIMEOUT)
                        process.kill()
                        process.join()
        self.children.clear()

    def _close_sockets(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
