"""Start-up checks shared by the daemon commands (``run``, ``horizon``): each failure is one message on
stderr naming the setting and the path, and the command exits 1 (docs/run.md#start-up)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from skyline_analyzer import connections, logs, tmpdir
from skyline_analyzer.config import Settings
from skyline_analyzer.exceptions import UnsafeDirectoryError

log = logging.getLogger(__name__)


def fail(message: str) -> bool:
    print(f"error :: {message}", file=sys.stderr)
    return False


def pid_path_exists(settings: Settings) -> bool:
    """``PID_PATH`` must be a directory (the original's message)."""
    if not Path(settings.PID_PATH).is_dir():
        return fail(f"pid directory does not exist at {settings.PID_PATH} (PID_PATH)")
    return True


def add_log_to(parser: argparse.ArgumentParser) -> None:
    """The daemons' ``--log-to`` option (docs/install.md#logs)."""
    parser.add_argument("--log-to", choices=logs.LOG_TARGETS, default=None,
                        help="log to LOG_PATH/<app>.log (file) or to stderr without time stamps (stderr); "
                             "default: stderr when it is systemd's journal (JOURNAL_STREAM), else file")


def start_logging(settings: Settings, app: str, level: int = logging.DEBUG,
                  target: str | None = None) -> logging.Handler | None:
    """Log to ``LOG_PATH/<app>.log`` or stderr (``target``, default :func:`logs.default_target`), and say
    which settings file is in use; None (after one message) when ``LOG_PATH`` cannot hold the log.

    ``LOG_PATH`` must be an existing directory this process can write: the midnight rotation creates and
    renames files there.
    """
    if (target or logs.default_target()) == "stderr":
        handler = logs.setup_stderr(level=level)
    else:
        handler = _start_log_file(settings, app, level)
    if handler is not None:
        source = settings.source if settings.source.startswith("<") else os.path.abspath(settings.source)
        log.info("%s :: settings from %s", app, source)
    return handler


def _start_log_file(settings: Settings, app: str, level: int) -> logging.Handler | None:
    path = Path(settings.LOG_PATH)
    if not path.exists():
        fail(f"LOG_PATH {path} does not exist: create the log directory")
        return None
    if not path.is_dir():
        fail(f"LOG_PATH {path} is not a directory")
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        fail(f"LOG_PATH {path} is not writable by this user: {app}.log cannot be created or rotated there")
        return None
    try:
        return logs.setup(path, app, level=level)
    except OSError as exc:
        fail(f"LOG_PATH {path}: cannot open {logs.log_file(path, app)}: {exc.strerror or exc}")
        return None


def tmp_dir_private(settings: Settings) -> bool:
    """``SKYLINE_TMP_DIR`` is created 0700, or must already be private to this user (:mod:`skyline_analyzer.tmpdir`)."""
    try:
        tmpdir.ensure_private(Path(settings.SKYLINE_TMP_DIR))
    except UnsafeDirectoryError as exc:
        log.error("error :: %s - cannot start", exc)
        return fail(str(exc))
    return True


def redis_credentials_accepted(settings: Settings) -> bool:
    """A wrong ``REDIS_PASSWORD`` is a start-up error (printed and logged); an unreachable Redis is not."""
    try:
        connections.check_credentials(settings)
    except connections.RedisAuthError as exc:
        log.error("error :: %s - cannot start", exc)
        return fail(str(exc))
    return True
