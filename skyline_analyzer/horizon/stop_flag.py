"""What Horizon's child processes share with the agent without any lock: a stop flag, and the entry point.

A process killed while it holds a multiprocessing lock leaves it held for everyone else (a
``multiprocessing.Event`` even blocks the process that sets it, waiting for the dead waiter). So the agent
tells children to stop through a :class:`Flag` (one shared byte, polled), counters are per-process rows
(:mod:`.counters`), and children log straight to the file (:func:`skyline_analyzer.logs.worker_logging`).
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

from skyline_analyzer import logs

#: Seconds between looks at the flag while waiting on it.
POLL_SECONDS = 0.05


class Flag:
    """A shared boolean set by the agent and polled by its children; create before forking them."""

    def __init__(self, context: BaseContext | None = None) -> None:
        context = context or multiprocessing.get_context("fork")
        self._value = context.Value("b", 0, lock=False)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds pass; returns whether it is set."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL_SECONDS, remaining))
        return True


def child_main(target: Callable[..., None], *args: Any) -> None:
    """A child process's entry: log straight to the file the agent rotates, then run ``target(*args)``."""
    # The agent alone decides when children stop (through its flags, or by dying): a Ctrl-C or a SIGTERM
    # sent to the whole process group (systemd's default) must not kill them in the middle of a write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.worker_logging()
    target(*args)
