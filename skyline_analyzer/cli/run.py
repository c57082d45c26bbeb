"""``skyline-analyzer run``: the Analyzer daemon in the foreground (docs/run.md).

Start-up, in order: validate the settings, check ``PID_PATH``, log to ``LOG_PATH/analyzer.log`` (a bad
``LOG_PATH`` is one message naming it), make ``SKYLINE_TMP_DIR`` private, run the algorithm self-test, check
the Redis credentials, import what the algorithms need (making the :class:`Analyzer`), take part in the log
hand-off with ``bin/analyzer.d`` (delete ``analyzer.log.wait``: "started"), tell systemd READY, then loop.
Any start-up failure prints a clear message and exits 1.

Signals (:mod:`skyline_analyzer.daemon`): SIGTERM, or a first Ctrl-C, finishes the current run's bookkeeping
and exits 0 (a run lasts at most about ``MAX_ANALYZER_PROCESS_RUNTIME``); a second Ctrl-C stops at once,
killing the workers (exit 130); SIGHUP reopens the log file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

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
    service.add_log_to(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    if not service.pid_path_exists(settings) or service.start_logging(settings, APP, target=args.log_to) is None:
        return 1
    if not service.tmp_dir_private(settings):
        return 1
    try:
        algorithm_self_test(settings)
    except Exception:
        text = traceback.format_exc()
        print(f"Algorithm test run failed.\n{text}", file=sys.stderr)
        log.error("Algorithm test run failed.\n%s", text)
        return 1
    if not service.redis_credentials_accepted(settings):
        return 1
    analyzer = Analyzer(settings, Notifier())
    analyzer.install_signal_handlers()
    logs.log_handoff(settings.LOG_PATH, APP)
    return analyzer.serve(lambda: analyzer.run_forever(args.max_runs), lambda: log.info("%s stopped", APP))
