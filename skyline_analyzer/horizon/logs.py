"""Horizon's log: ``LOG_PATH/horizon.log``, written by the agent alone for every process.

Child processes send their records over a queue to the agent, so one process writes and rotates the file
(several processes rotating one file at midnight would lose lines).
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Every module logs under the package's logger (``logging.getLogger(__name__)``).
PACKAGE_LOGGER = "skyline_analyzer"
#: Log line layout: time, process id, message (messages carry the original's ``horizon.<part> ::`` prefix).
FORMAT = "%(asctime)s :: %(process)d :: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Rotated logs kept, as the original.
BACKUP_COUNT = 5


def setup(log_path: str, stderr: bool = False, level: int = logging.INFO) -> list[logging.Handler]:
    """Send the package's records to ``<log_path>/horizon.log`` (rotated at midnight) and optionally stderr.

    Returns the handlers, which the agent also serves its children's records to.
    """
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    handlers: list[logging.Handler] = [logging.handlers.TimedRotatingFileHandler(
        Path(log_path) / "horizon.log", when="midnight", backupCount=BACKUP_COUNT)]
    if stderr:
        handlers.append(logging.StreamHandler())
    logger = logging.getLogger(PACKAGE_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handlers


def child_main(log_queue: Any, target: Callable[..., None], *args: Any) -> None:
    """A child process's entry: route its log records to ``log_queue`` (if given), then run ``target(*args)``."""
    # The agent alone decides when children stop (through its stop events, or by dying): a Ctrl-C or a
    # SIGTERM sent to the whole process group (systemd's default) must not kill them mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if log_queue is not None:
        logger = logging.getLogger(PACKAGE_LOGGER)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(logging.handlers.QueueHandler(log_queue))
    target(*args)
