"""``skyline-analyzer run``: the Analyzer daemon in the foreground (SPEC.md 4.2, 4.3).

Start-up, in order: validate the settings, check that ``PID_PATH`` and ``LOG_PATH`` exist, log to
``LOG_PATH/analyzer.log``, run the algorithm self-test, check the Redis credentials, take part in the log
hand-off with ``bin/analyzer.d`` (delete ``analyzer.log.wait``: "started"), tell systemd READY, then loop.
Any start-up failure prints a clear message and exits 1.

Signals: SIGTERM, or a first Ctrl-C, finishes the current run's bookkeeping and exits 0 (a run lasts at
most about ``MAX_ANALYZER_PROCESS_RUNTIME``); a second Ctrl-C stops at once, killing the workers (exit 130).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from skyline_analyzer import config, connections, logs
from skyline_analyzer.analyzer import Analyzer
from skyline_analyzer.systemd import Notifier
from skyline_analyzer.verdict import algorithm_self_test

log = logging.getLogger(__name__)

APP = "analyzer"
#: Seconds the process waits for bin/analyzer.d to release the log lock (the original's 5 s).
LOG_LOCK_WAIT = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the Analyzer daemon in the foreground",
        description="Run the Analyzer daemon in the foreground until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--max-runs", type=int, default=None, help="exit after this many completed runs")
    parser.set_defaults(handler=run)


def log_handoff(log_path: Path) -> None:
    """Signal "started" to bin/analyzer.d and wait (at most LOG_LOCK_WAIT) for it to release the log."""
    (log_path / f"{APP}.log.wait").unlink(missing_ok=True)
    lock = log_path / f"{APP}.log.lock"
    deadline = time.monotonic() + LOG_LOCK_WAIT
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    log.info("starting %s run", APP)
    if lock.exists():
        log.error("error - bin/%s.d log management seems to have failed, continuing", APP)
        lock.unlink(missing_ok=True)
    else:
        log.info("bin/%s.d log management done", APP)


def install_signal_handlers(analyzer: Analyzer) -> None:
    interrupts = 0

    def on_term(signum: int, frame: FrameType | None) -> None:
        log.info("received SIGTERM: stopping after the current run's bookkeeping")
        analyzer.request_stop()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        log.info("received SIGINT: stopping after the current run (Ctrl-C again to stop now)")
        analyzer.request_stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_interrupt)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    for label, path in (("pid", settings.PID_PATH), ("log", settings.LOG_PATH)):
        if not Path(path).is_dir():
            print(f"{label} directory does not exist at {path}", file=sys.stderr)
            return 1
    logs.setup(settings.LOG_PATH, APP)
    try:
        algorithm_self_test(settings)
    except Exception:
        text = traceback.format_exc()
        print(f"Algorithm test run failed.\n{text}", file=sys.stderr)
        log.error("Algorithm test run failed.\n%s", text)
        return 1
    try:
        connections.check_credentials(settings)
    except connections.RedisAuthError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        log.error("error :: %s - cannot start", exc)
        return 1
    log_handoff(Path(settings.LOG_PATH))
    notifier = Notifier()
    analyzer = Analyzer(settings, notifier)
    install_signal_handlers(analyzer)
    notifier.ready()
    try:
        analyzer.run_forever(args.max_runs)
    except KeyboardInterrupt:
        log.info("interrupted twice: stopped immediately")
        return 130
    finally:
        notifier.stopping()
    log.info("%s stopped", APP)
    return 0
