"""What the Analyzer and Horizon parents share as daemons: signals, the stop and reopen flags, waits that a
signal ends, and systemd watchdog pings through long steps (docs/analyzer.md#signals-and-service).

- SIGTERM, or a first SIGINT: finish the current work, then leave the main loop; the command exits 0.
- A second SIGINT: :class:`KeyboardInterrupt` at once; the command kills its children and exits 130.
- SIGHUP: reopen the log files (after logrotate renamed them) and log that it did.

A handler only assigns attributes (a second SIGINT also raises). Python runs a handler in the main thread
between two bytecodes, possibly inside a logging call or inside a wait that holds a lock: taking a lock
there (as ``threading.Event.set`` does) can deadlock, and writing a log line can re-enter the buffered
log file. Logging and reopening happen in the main loop, at :meth:`Daemon.handle_signals`.
``signal.set_wakeup_fd`` writes a byte to a pipe when a signal arrives, so :meth:`Daemon.wait` (and any
wait that includes :attr:`Daemon.wakeup_fd`) returns at once instead of at its timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from skyline_analyzer import logs
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between looks at the stop flag while waiting without a wake-up pipe.
STOP_POLL = 0.2

#: The daemon whose handlers are installed in this process (one per process: signals are process-wide).
_installed: Daemon | None = None


class Daemon:
    """The parent process of a daemon: :meth:`install_signal_handlers`, then :meth:`serve` its main loop.

    Parameters
    ----------
    notifier
        The systemd notifier; :meth:`sleep`, :meth:`checkpoint` and :meth:`keep_alive` ping its watchdog.
    """

    #: Prefix of this daemon's log lines about signals.
    app = "daemon"
    #: What a first SIGTERM or SIGINT leads to, as logged.
    stop_note = "stopping after the current work"

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        #: Set by SIGTERM, the first SIGINT or :meth:`request_stop`; the main loop leaves when it sees it.
        self.stop_requested = False
        #: Set by SIGHUP; :meth:`handle_signals` clears it and reopens the log files.
        self.reopen_requested = False
        self.stop_signal: int | None = None
        self.interrupts = 0
        self._stop_logged = False
        self._wakeup: tuple[int, int] | None = None

    # --- signals ------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """Handle SIGTERM, SIGINT and SIGHUP in this process (call from the main thread, before forking)."""
        global _installed
        if self._wakeup is None:
            self._wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_interrupt)
        signal.signal(signal.SIGHUP, self._on_hangup)
        _installed = self

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum
        self.stop_requested = True

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts += 1
        if self.interrupts > 1:
            raise KeyboardInterrupt
        self._on_stop(signum, frame)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self.reopen_requested = True

    @property
    def wakeup_fd(self) -> int | None:
        """A descriptor that becomes readable when a signal arrives (None before the handlers are installed)."""
        return None if self._wakeup is None else self._wakeup[0]

    def request_stop(self) -> None:
        """Leave the main loop after the current work, as SIGTERM does (callable from any thread)."""
        self.stop_requested = True
        if self._wakeup is not None:
            # A full pipe already holds a pending wake-up.
            with contextlib.suppress(BlockingIOError):
                os.write(self._wakeup[1], b"\0")

    def handle_signals(self) -> None:
        """In the main loop: log a requested stop once, and reopen the log files after a SIGHUP."""
        if self._wakeup is not None:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wakeup[0], 512):
                    pass
        if self.stop_signal is not None and not self._stop_logged:
            self._stop_logged = True
            name = signal.Signals(self.stop_signal).name
            again = " (Ctrl-C again to stop now)" if self.stop_signal == signal.SIGINT else ""
            log.info("%s :: received %s: %s%s", self.app, name, self.stop_note, again)
        if self.reopen_requested:
            # Cleared first: a SIGHUP arriving while the files are reopened asks for another reopen.
            self.reopen_requested = False
            reopened = logs.reopen()
            log.info("%s :: received SIGHUP: reopened the log files %s", self.app,
                     ", ".join(str(path) for path in reopened) or "(none)")

    # --- waiting and the watchdog -------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Wait ``timeout`` seconds or until a signal arrives or a stop is requested, then :meth:`handle_signals`.

        Without installed handlers (a daemon driven in-process) the stop flag is polled instead.
        """
        if self._wakeup is not None:
            select.select([self._wakeup[0]], [], [], max(0.0, timeout))
        else:
            deadline = time.monotonic() + timeout
            while not self.stop_requested and (remaining := deadline - time.monotonic()) > 0:
                time.sleep(min(remaining, STOP_POLL))
        self.handle_signals()

    def checkpoint(self) -> None:
        """Between two steps of the main loop: act on signals and ping the watchdog."""
        self.handle_signals()
        self.notifier.watchdog()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until a stop is requested, pinging the watchdog at its interval meanwhile."""
        deadline = time.monotonic() + seconds
        interval = self.notifier.watchdog_interval
        self.notifier.watchdog()
        while not self.stop_requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.wait(min(remaining, interval) if interval is not None else remaining)
            if interval is not None:
                self.notifier.watchdog()

    def keep_alive(self, step: Callable[[], T], limit: float) -> T:
        """Run a step whose own timeouts bound it to ``limit`` seconds, pinging the watchdog while it runs.

        The step runs in a helper thread while the main thread pings. Past ``limit`` the pings stop, so a
        step stuck beyond its own bounds still trips the watchdog. Without a watchdog the step runs inline.
        """
        interval = self.notifier.watchdog_interval
        if interval is None:
            return step()
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["value"] = step()
            except BaseException as exc:  # re-raised in the caller's thread below
                outcome["error"] = exc

        helper = threading.Thread(target=run, name=f"{self.app}-step", daemon=True)
        deadline = time.monotonic() + limit
        self.notifier.watchdog()
        helper.start()
        while helper.is_alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                helper.join()
                break
            helper.join(min(interval, remaining))
            if helper.is_alive() and time.monotonic() < deadline:
                self.notifier.watchdog()
        self.notifier.watchdog()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]

    # --- the command's main loop --------------------------------------------------------------

    def serve(self, main: Callable[[], object], finish: Callable[[], object] | None = None) -> int:
        """READY, ``main()`` until it returns, STOPPING, ``finish()``: exit code 0.

        A second SIGINT interrupts either: :meth:`abort` then stops what is left at once; exit code 130.
        """
        self.notifier.ready()
        try:
            main()
            self.notifier.stopping()
            if finish is not None:
                finish()
        except KeyboardInterrupt:
            self.notifier.stopping()
            log.info("%s :: interrupted twice: stopped immediately", self.app)
            self.abort()
            return 130
        return 0

    def abort(self) -> None:
        """After a second SIGINT: stop whatever is left at once (subclasses kill their children)."""


def _reset_in_child() -> None:
    """In a child forked from a daemon's parent: drop the parent's wake-up pipe and handlers.

    A child must not write the parent's wake-up pipe, nor set flags in its own copy of the daemon when the
    parent terminates it: SIGTERM kills it, Ctrl-C (sent to the whole process group) is left to the parent,
    and SIGHUP is ignored (children log through handlers that follow a renamed file by themselves).
    """
    global _installed
    if _installed is None or _installed._wakeup is None:
        return
    signal.set_wakeup_fd(-1)
    for fd in _installed._wakeup:
        os.close(fd)
    _installed._wakeup = None
    _installed = None
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


os.register_at_fork(after_in_child=_reset_in_child)
