"""Logging for the daemons: ``LOG_PATH/<app>.log``, rotated at midnight, five backups (docs/formats.md#log-files).

Every record is ``"<YYYY-mm-dd HH:MM:SS> :: <pid> :: <message>"``. The parent process owns rotation;
forked workers switch to a handler that only follows the parent's renames (:func:`worker_logging`), so
two processes never rotate the same file.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from skyline_analyzer import excerpt

#: The package's logger: every module logs under it with ``logging.getLogger(__name__)``.
PACKAGE_LOGGER = "skyline_analyzer"
FORMAT = "%(asctime)s :: %(process)d :: %(message)s"
#: Records on stderr (``--log-to stderr``, or under systemd): no time stamp, the journal adds its own.
STDERR_FORMAT = "%(process)d :: %(message)s"
#: Where a daemon logs: its file under LOG_PATH, or stderr (the journal under systemd).
LOG_TARGETS = ("file", "stderr")
#: syslog priority of each logging level, the ``<N>`` prefix journald reads (sd-daemon(3)).
_JOURNAL_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Rotated logs kept, as the original.
BACKUP_COUNT = 5
#: Seconds a daemon waits for its bin/<app>.d to release the log lock (the original's 5 s).
LOG_LOCK_WAIT = 5.0
#: Characters of one ``%s`` argument kept in a record: names come from Redis and the network.
MAX_ARG_CHARS = 1000
#: Prefix of every line of a record after its first (tracebacks, multi-line messages), so that no text
#: inside a record can start a line that reads as a record of its own.
CONTINUATION = "    | "


def _safe_arg(value: Any) -> Any:
    """A log argument that cannot break its line: strings escaped and bounded, containers rendered bounded."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return excerpt.escape(value, MAX_ARG_CHARS, backslashes=False)
    if isinstance(value, BaseException | Path):
        return excerpt.escape(str(value), MAX_ARG_CHARS, backslashes=False)
    return excerpt.describe(value, MAX_ARG_CHARS)


class SafeFormatter(logging.Formatter):
    """The package's formatter: arguments escaped and bounded, continuation lines marked.

    A metric name with a newline or an escape sequence, logged as an argument, stays on its line and shows
    as ``\\n`` / ``\\x1b`` (docs/analyzer.md); a traceback keeps its lines, each behind :data:`CONTINUATION`.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            record = copy.copy(record)
            if isinstance(record.args, dict):
                record.args = {key: _safe_arg(value) for key, value in record.args.items()}
            else:
                record.args = tuple(_safe_arg(value) for value in record.args)
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", "\n" + CONTINUATION)


class JournalFormatter(SafeFormatter):
    """:class:`SafeFormatter` with each record's priority as journald's ``<N>`` prefix."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNAL_PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{super().format(record)}"


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """Whether stderr is systemd's journal stream: ``JOURNAL_STREAM`` names its device and inode.

    systemd sets it for a service whose output goes to the journal; a child that redirected stderr
    elsewhere no longer matches (systemd.exec(5)).
    """
    stream = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        stat = os.fstat(2)
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def default_target() -> str:
    """``stderr`` when stderr is the journal, else ``file``: what a daemon does without ``--log-to``."""
    return "stderr" if stderr_is_journal() else "file"


def setup_stderr(*, level: int = logging.DEBUG) -> logging.Handler:
    """Send the package's records to stderr without a time stamp; with priorities when it is the journal."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JournalFormatter if stderr_is_journal() else SafeFormatter
    handler.setFormatter(formatter(STDERR_FORMAT))
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def log_file(log_path: str | Path, app: str) -> Path:
    return Path(log_path) / f"{app}.log"


def setup(log_path: str | Path, app: str, *, level: int = logging.DEBUG) -> logging.Handler:
    """Send the package's records to ``LOG_PATH/<app>.log`` (replacing any earlier file handler)."""
    handler = logging.handlers.TimedRotatingFileHandler(
        log_file(log_path, app), when="midnight", interval=1, backupCount=BACKUP_COUNT
    )
    handler.setFormatter(SafeFormatter(FORMAT, DATE_FORMAT))
    logger = logging.getLogger(PACKAGE_LOGGER)
    for old in list(logger.handlers):
        if isinstance(old, logging.FileHandler):
            logger.removeHandler(old)
            old.close()
    logger.addHandler(handler)
    logger.setLevel(level)
    # The package logs to its own file; records must not also reach a root handler set up by a host program.
    logger.propagate = False
    return handler


def reopen() -> list[Path]:
    """Reopen every log file of the package's logger at its path; return the paths reopened.

    After logrotate renamed ``<app>.log`` (SIGHUP, docs/analyzer.md#signals-and-service), records go to a
    new file at the configured path. The process's stdout and stderr follow when they were appended to the
    old file (``bin/<app>.d`` sends them there), so a last traceback lands in the new file too. A file that
    cannot be opened keeps the old one (logged).
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    reopened = []
    for handler in list(logger.handlers):
        if not isinstance(handler, logging.FileHandler):
            continue
        try:
            stream = open(handler.baseFilename, handler.mode,  # noqa: SIM115 (the handler owns it from here)
                          encoding=handler.encoding, errors=handler.errors)
        except OSError as exc:
            logger.error("error :: cannot reopen the log file %s: %s", handler.baseFilename, exc)
            continue
        with handler.lock:
            old = handler.stream
            handler.stream = stream
        if old is not None:
            _follow_with_std_streams(old, stream)
            old.close()
        reopened.append(Path(handler.baseFilename))
    return reopened


def _follow_with_std_streams(old: IO[str], new: IO[str]) -> None:
    """Point descriptors 1 and 2 at ``new`` when they are the file ``old`` has open."""
    try:
        old_stat = os.fstat(old.fileno())
        new_fd = new.fileno()
    except (OSError, ValueError):
        return
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        try:
            current = os.fstat(fd)
        except OSError:
            continue
        if (current.st_dev, current.st_ino) == (old_stat.st_dev, old_stat.st_ino):
            if stream is not None:
                stream.flush()
            os.dup2(new_fd, fd)


def worker_logging() -> None:
    """In a forked worker: replace the inherited rotating handlers with ones that never rotate.

    A :class:`logging.handlers.WatchedFileHandler` reopens the file after the parent rotated it.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    for old in list(logger.handlers):
        if isinstance(old, logging.handlers.TimedRotatingFileHandler):
            watched = logging.handlers.WatchedFileHandler(old.baseFilename)
            watched.setFormatter(old.formatter)
            logger.removeHandler(old)
            # Closing the child's copy of the descriptor leaves the parent's open; nothing is buffered,
            # because the handler flushes after every record.
            old.close()
            logger.addHandler(watched)


def log_handoff(log_path: str | Path, app: str) -> None:
    """Take part in ``bin/<app>.d``'s log hand-off (docs/formats.md#log-files).

    Deleting ``<app>.log.wait`` tells the script "started"; the process then waits at most
    :data:`LOG_LOCK_WAIT` for the script to remove ``<app>.log.lock`` (it prepends the previous log
    meanwhile), and removes a lock left behind itself.
    """
    log = logging.getLogger(PACKAGE_LOGGER)
    directory = Path(log_path)
    (directory / f"{app}.log.wait").unlink(missing_ok=True)
    lock = directory / f"{app}.log.lock"
    deadline = time.monotonic() + LOG_LOCK_WAIT
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    log.info("starting %s run", app)
    if lock.exists():
        log.error("error - bin/%s.d log management seems to have failed, continuing", app)
        lock.unlink(missing_ok=True)
    else:
        log.info("bin/%s.d log management done", app)
