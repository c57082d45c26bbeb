"""The daemon's log file: line format, midnight rotation with five backups, workers that never rotate."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re

import pytest

from skyline_analyzer import logs

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d :: (\d+) :: (.*)$")


@pytest.fixture
def package_logger():
    logger = logging.getLogger(logs.PACKAGE_LOGGER)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_lines_carry_time_pid_and_message(tmp_path, package_logger):
    logs.setup(tmp_path, "analyzer")
    logging.getLogger("skyline_analyzer.analyzer.daemon").info("total metrics      :: %d", 3)
    [line] = (tmp_path / "analyzer.log").read_text().splitlines()
    match = LINE.match(line)
    assert match and match.groups() == (str(os.getpid()), "total metrics      :: 3")


def test_rotation_keeps_five_backups(tmp_path, package_logger):
    handler = logs.setup(tmp_path, "analyzer")
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "MIDNIGHT" and handler.backupCount == 5
    for day in range(1, 8):
        (tmp_path / f"analyzer.log.2026-01-0{day}").write_text(f"day {day}\n")
    logging.getLogger("skyline_analyzer.x").info("before midnight")
    handler.doRollover()
    logging.getLogger("skyline_analyzer.x").info("after midnight")
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("analyzer.log."))
    assert len(backups) == 5
    assert "analyzer.log.2026-01-01" not in backups
    assert any("before midnight" in (tmp_path / name).read_text() for name in backups)
    assert "after midnight" in (tmp_path / "analyzer.log").read_text()
    assert "before midnight" not in (tmp_path / "analyzer.log").read_text()


def test_a_worker_follows_the_parents_rotation(tmp_path, package_logger):
    logs.setup(tmp_path, "analyzer")
    logs.worker_logging()
    [handler] = package_logger.handlers
    assert isinstance(handler, logging.handlers.WatchedFileHandler)
    (tmp_path / "analyzer.log").rename(tmp_path / "analyzer.log.1")
    logging.getLogger("skyline_analyzer.analyzer.worker").info("after the rotation")
    assert "after the rotation" in (tmp_path / "analyzer.log").read_text()
    assert "after the rotation" not in (tmp_path / "analyzer.log.1").read_text()
