"""A private Dask cluster for the tests and the benchmark: a real ``dask scheduler`` and ``dask worker`` processes.

Nothing here is part of the daemon. :func:`private_dask` starts ``python -m dask scheduler`` on a free
loopback port (no dashboard) and a number of ``python -m dask worker`` processes, each its own process
without a nanny (so that its pid is the worker's: a test may SIGKILL or SIGSTOP it), one thread each; it
stops them all on exit. :meth:`DaskCluster.add_worker` starts another at any time (a node joining). The
processes run this interpreter, so the workers import this checkout's package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyline_analyzer.harness import free_port

#: Seconds allowed for a scheduler or a worker to come up, and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: Attempts at a free port for the scheduler (another process may take the one we picked).
PORT_ATTEMPTS = 5


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{' '.join(map(str, process.args))} did not start ({text!r} not logged):\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        # A stopped (SIGSTOP) process only acts on SIGTERM once continued.
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DaskCluster:
    """A scheduler and its workers, all children of this process, logging into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.address = ""
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen:
        handle = log.open("ab")
        self._logs.append(handle)
        # The workers import this checkout; Dask's own settings come from its defaults, not ~/.config.
        env = {**os.environ, "DASK_CONFIG": str(self.directory / "dask-config")}
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=handle, stderr=subprocess.STDOUT,
                                env=env, cwd=self.directory)

    def start_scheduler(self, port: int | None = None) -> str:
        """Start the scheduler on ``port`` (a free loopback port when None); return ``tcp://127.0.0.1:<port>``.

        Restarting on the port of a scheduler that stopped lets its workers find it again.
        """
        for _ in range(PORT_ATTEMPTS if port is None else 1):
            port = port or free_port()
            log = self.directory / f"scheduler-{port}.log"
            self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                          "--no-dashboard"], log)
            try:
                _wait_for(log, "Scheduler at:", self.scheduler, START_TIMEOUT)
            except RuntimeError:
                _stop(self.scheduler)
                continue
            self.address = f"tcp://127.0.0.1:{port}"
            return self.address
        raise RuntimeError(f"no dask scheduler started in {PORT_ATTEMPTS} attempts (see {self.directory})")

    def add_worker(self, name: str | None = None, wait: bool = True) -> subprocess.Popen:
        """Start one worker (one thread, no nanny) and, with ``wait``, return once it has registered."""
        name = name or f"w{len(self.workers) + 1}"
        work_dir = self.directory / name
        work_dir.mkdir(exist_ok=True)
        log = self.directory / f"{name}.log"
        process = self._spawn(["worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
                               "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(work_dir),
                               "--death-timeout", "60"], log)
        self.workers[name] = process
        if wait:
            _wait_for(log, "Registered to:", process, START_TIMEOUT)
        return process

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            _stop(self.scheduler)

    def stop(self) -> None:
        """Stop every worker, then the scheduler; close the logs."""
        for process in self.workers.values():
            _stop(process)
        self.stop_scheduler()
        for handle in self._logs:
            handle.close()


@contextmanager
def private_dask(directory: Path, workers: int = 2) -> Iterator[DaskCluster]:
    """A scheduler and ``workers`` registered workers on loopback, stopped when the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster = DaskCluster(directory)
    try:
        cluster.start_scheduler()
        for _ in range(workers):
            cluster.add_worker()
        yield cluster
    finally:
        cluster.stop()
