"""``skyline-analyzer horizon``: the Horizon ingestion daemon in the foreground (docs/horizon.md).

Start-up, in order: validate the settings (Horizon's own included), check that ``PID_PATH`` and ``LOG_PATH``
exist, log to ``LOG_PATH/horizon.log``, check the Redis credentials, bind the three listeners, take part in
the log hand-off with ``bin/horizon.d`` (delete ``horizon.log.wait``), tell systemd READY, then supervise
(a systemd watchdog ping each second) until SIGTERM or Ctrl-C. On stop the listeners queue what they hold,
the workers write everything queued, the counters are reported a last time, and the exit code is 0. A
second Ctrl-C kills the children at once (exit 130); SIGHUP reopens the log file (:mod:`skyline_analyzer.daemon`).
Any start-up failure prints a clear message and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

from skyline_analyzer import config, logs
from skyline_analyzer.cli import service
from skyline_analyzer.exceptions import SettingsError
from skyline_analyzer.horizon.agent import Horizon, validate
from skyline_analyzer.systemd import Notifier

log = logging.getLogger(__name__)

APP = "horizon"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "horizon",
        help="run the Horizon listeners, workers and Roomba in the foreground",
        description="Receive carbon pickle (PICKLE_PORT), UDP msgpack (UDP_PORT) and carbon plaintext "
                    "(PLAINTEXT_PORT) datapoints on HORIZON_IP, store them in Redis and keep Redis trimmed, "
                    "until SIGTERM or Ctrl-C.",
    )
    service.add_log_to(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    problems = validate(settings)
    if problems:
        raise SettingsError(problems)
    if not service.pid_path_exists(settings):
        return 1
    if service.start_logging(settings, APP, level=logging.INFO, target=args.log_to) is None:
        return 1
    if not service.redis_credentials_accepted(settings):
        return 1
    horizon = Horizon(settings, notifier=Notifier())
    # Before the children are forked: they start with the handlers reset (skyline_analyzer.daemon).
    horizon.install_signal_handlers()
    try:
        horizon.start()
    except OSError as exc:
        print(f"error :: {exc.strerror or exc}", file=sys.stderr)
        log.error("error :: %s - cannot start", exc.strerror or exc)
        return 1
    logs.log_handoff(settings.LOG_PATH, APP)
    return horizon.serve(horizon.run, horizon.shutdown)
