"""Start-up checks shared by the daemon commands (``run``, ``horizon``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from skyline_analyzer import connections
from skyline_analyzer.config import Settings

log = logging.getLogger(__name__)


def directories_exist(settings: Settings) -> bool:
    """``PID_PATH`` and ``LOG_PATH`` must be directories; say which is missing, as the original did."""
    for label, path in (("pid", settings.PID_PATH), ("log", settings.LOG_PATH)):
        if not Path(path).is_dir():
            print(f"{label} directory does not exist at {path}", file=sys.stderr)
            return False
    return True


def redis_credentials_accepted(settings: Settings) -> bool:
    """A wrong ``REDIS_PASSWORD`` is a start-up error (printed and logged); an unreachable Redis is not."""
    try:
        connections.check_credentials(settings)
    except connections.RedisAuthError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        log.error("error :: %s - cannot start", exc)
        return False
    return True
