"""``skyline-analyzer run``: the Analyzer daemon in the foreground (docs/run.md).

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
import traceback
from types import FrameType

from skyline_analyzer import config, logs
from skyline_analyzer.analyzer.daemon import Analyzer
from skyline_analyzer.cli import service
from skyline_analyzer.detection.reference import algorithm_self_test
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

APP = "analyzer"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the Analyzer daemon in the foreground",
        description="Run the Analyzer daemon in the foreground until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("--max-runs", type=int, default=None, help="exit after this many completed runs")
    parser.set_defaults(handler=run)


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
    if not service.directories_exist(settings):
        return 1
    logs.setup(settings.LOG_PATH, APP)
    try:
        algorithm_self_test(settings)
    except Exception:
        text = traceback.format_exc()
        print(f"Algorithm test run failed.\n{text}", file=sys.stderr)
        log.error("Algorithm test run failed.\n%s", text)
        return 1
    if not service.redis_credentials_accepted(settings):
        return 1
    logs.log_handoff(settings.LOG_PATH, APP)
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
