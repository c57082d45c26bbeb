"""Files algorithms leave in ``SKYLINE_TMP_DIR``: timings and error reports (docs/formats.md#algorithm-timing-files).

Run metrics: for each algorithm actually run, ``"1\\n"`` is appended to ``analyzer.<alg>.count`` and the
elapsed seconds as ``"%.6f\\n"`` to ``analyzer.<alg>.timings``. Several worker processes append at once,
so each flush is a single ``write`` on an ``O_APPEND`` descriptor: the kernel places every such write at
the current end of file in one piece, and lines from different processes never interleave.

Every file is opened through :mod:`skyline_analyzer.tmpdir`: never through a symbolic link. A link or other
non-regular entry found where a run-metric file belongs is removed (and logged) when a run resets the files.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from skyline_analyzer import tmpdir

log = logging.getLogger(__name__)

#: Buffered records per algorithm before a flush is forced. A record is one ``(seconds, runs)`` pair: one run
#: for the reference engine, a whole block's runs for the fast one, so this bounds the buffer's memory and
#: the fast engine flushes a few times a run instead of every thousand runs (each flush opens and appends
#: to two files per algorithm: at every thousand runs, about 7,000 file writes in a run of 100,000 metrics).
FLUSH_EVERY = 1000
_ERROR_FILE = re.compile(r"analyzer.*.algorithm.error")
#: A run-metric file holding nothing but digits, dots and newlines.
_PLAIN = re.compile(r"[0-9.\n]*")


def count_path(tmp_dir: Path, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{algorithm}.count"


def timings_path(tmp_dir: Path, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{algorithm}.timings"


def error_path(tmp_dir: Path, pid: int, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{pid}.{algorithm}.algorithm.error"


class RunMetricsRecorder:
    """Buffers per-algorithm timings in a worker and appends them to the shared files on :meth:`flush`.

    The fast engine records one share for all the rows of a block that ran an algorithm, so records are
    kept as ``(seconds, runs)`` and each is formatted once, not once per run.
    """

    def __init__(self, tmp_dir: str | Path) -> None:
        self.tmp_dir = Path(tmp_dir)
        self._pending: dict[str, list[tuple[float, int]]] = {}
        self._write_failed = False

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        """``runs`` runs of ``algorithm`` that took ``seconds`` each."""
        pending = self._pending.setdefault(algorithm, [])
        pending.append((seconds, runs))
        if len(pending) >= FLUSH_EVERY:
            self.flush()

    def failed(self, algorithm: str, metric_name: str, error: BaseException) -> None:
        """Leave the error file the parent reports after the run, and log the traceback now."""
        record_algorithm_error(self.tmp_dir, algorithm, "".join(traceback.format_exception(error)))
        log.error("error :: algorithm %s raised on %s; its vote is None (counts towards anomalous)",
                  algorithm, metric_name, exc_info=error)

    def add(self, timings: dict[str, list[tuple[float, int]]]) -> None:
        """Buffer timings collected elsewhere (a Dask unit's :class:`CollectingRecorder`)."""
        for algorithm, pairs in timings.items():
            for seconds, runs in pairs:
                self.record(algorithm, seconds, runs)

    def flush(self) -> None:
        """Append everything buffered; a file that cannot be written loses these records (logged once)."""
        pending, self._pending = self._pending, {}
        for algorithm, timings in pending.items():
            runs = sum(n for _, n in timings)
            if not runs:
                continue
            try:
                tmpdir.write(count_path(self.tmp_dir, algorithm), b"1\n" * runs, append=True)
                tmpdir.write(timings_path(self.tmp_dir, algorithm),
                             "".join(f"{t:.6f}\n" * n for t, n in timings).encode(), append=True)
            except OSError as exc:
                if not self._write_failed:
                    self._write_failed = True
                    log.error("error :: could not write the algorithm timing files in %s: %s", self.tmp_dir, exc)


class CollectingRecorder:
    """Keeps timings and error reports in memory, for a Dask unit to return to the parent.

    A unit may run on another machine, and Dask may run it twice: what it would write to the run-metric
    files travels in its result instead, and the parent writes the result it takes, once.
    """

    def __init__(self) -> None:
        # (seconds each, runs) as the engine reported them: a block's timing is one pair, not one per series.
        self.timings: dict[str, list[tuple[float, int]]] = {}
        self.errors: list[tuple[str, str]] = []

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        self.timings.setdefault(algorithm, []).append((seconds, runs))

    def failed(self, algorithm: str, metric_name: str, error: BaseException) -> None:
        self.errors.append((algorithm, "".join(traceback.format_exception(error))))
        log.error("error :: algorithm %s raised on %s; its vote is None (counts towards anomalous)",
                  algorithm, metric_name, exc_info=error)


@dataclass(frozen=True)
class AlgorithmTiming:
    """One algorithm's run metrics for a run (the three ``timing.*`` Graphite metrics)."""

    times_run: int
    total_time: float
    median_time: float


def reset_run_metrics(tmp_dir: Path, algorithms: list[str]) -> None:
    """Make ``tmp_dir`` private, then truncate (or create) both files of every algorithm for a new run.

    Raises :class:`skyline_analyzer.exceptions.UnsafeDirectoryError` when the directory is not private.
    """
    tmpdir.ensure_private(tmp_dir)
    for algorithm in algorithms:
        for path in (count_path(tmp_dir, algorithm), timings_path(tmp_dir, algorithm)):
            if tmpdir.is_foreign(path):
                log.error("error :: %s is not a regular file (a symbolic link?): removing it, not its target", path)
                path.unlink()
            tmpdir.write(path, b"")


def _lines(text: str) -> Iterable[str]:
    """The number lines of a run-metric file, stripped of v1.2.8's quotes (blank lines skipped)."""
    if _PLAIN.fullmatch(text):
        # What the workers write (digits, dots, newlines): split in one pass in C.
        return filter(None, text.split("\n"))
    return (line.replace("'", "") for line in text.splitlines() if line.strip())


def _floats(text: str) -> list[float]:
    return list(map(float, _lines(text)))


def _has_records(text: str) -> bool:
    """Whether a count file holds at least one number, and nothing that is not one (ValueError)."""
    # What the workers write, "1\n" repeated, is recognised without parsing a line (100,000s a run).
    if text and text.count("1\n") * 2 == len(text):
        return True
    return bool(_floats(text))


def _tally(text: str) -> dict[float, int]:
    """How many times each number occurs in a timings file (ValueError for a line that is not one).

    A block of series shares one timing, written once per series: the distinct lines are few, so each is
    parsed once instead of once per run (the parent reads 100,000s of lines every run).
    """
    tally: dict[float, int] = {}
    for line, count in Counter(_lines(text)).items():
        value = float(line)
        tally[value] = tally.get(value, 0) + count
    return tally


def summarise(tally: dict[float, int]) -> AlgorithmTiming:
    """The timing of a non-empty tally of runs (value -> runs that took it).

    ``median_time`` is :func:`statistics.median` of the runs (the middle one, or the mean of the two middle
    ones for an even count); ``total_time`` is their sum, taken as each distinct value times its runs, in
    increasing order (so it may differ from a sum in the file's order in the last bits, far below the 6
    decimals both are rounded to, as v1.2.8 sent them).
    """
    runs = sum(tally.values())
    ordered = sorted(tally.items())
    middle = (runs - 1) // 2, runs // 2
    found: list[float] = []
    seen = 0
    for value, count in ordered:
        seen += count
        while len(found) < 2 and middle[len(found)] < seen:
            found.append(value)
        if len(found) == 2:
            break
    return AlgorithmTiming(
        times_run=runs,
        total_time=round(sum(value * count for value, count in ordered), 6),
        median_time=round(found[0] if runs % 2 else (found[0] + found[1]) / 2, 6),
    )


def collect_run_metrics(tmp_dir: Path, algorithms: list[str]) -> dict[str, AlgorithmTiming]:
    """Aggregate the timing files; algorithms with no (or unreadable) records are left out."""
    collected = {}
    for algorithm in algorithms:
        try:
            if not _has_records(tmpdir.read_text(count_path(tmp_dir, algorithm))):
                continue
            tally = _tally(tmpdir.read_text(timings_path(tmp_dir, algorithm)))
        except (OSError, ValueError):
            continue
        if tally:
            collected[algorithm] = summarise(tally)
    return collected


def record_algorithm_error(tmp_dir: Path, algorithm: str, traceback_text: str) -> bool:
    """Overwrite this process's error file for ``algorithm``; False when it cannot be written."""
    try:
        tmpdir.write(error_path(tmp_dir, os.getpid(), algorithm), traceback_text.encode())
    except OSError:
        return False
    return True


def clean_algorithm_errors(tmp_dir: Path) -> None:
    """Delete every leftover error file (the original's regex *search*: dots are wildcards)."""
    if not tmp_dir.is_dir():
        return
    for path in tmp_dir.iterdir():
        if _ERROR_FILE.search(path.name):
            path.unlink(missing_ok=True)


def take_algorithm_errors(tmp_dir: Path, pids: list[int], algorithms: list[str]) -> list[tuple[int, str, str]]:
    """Read and delete the error files of the given worker pids: ``(pid, algorithm, traceback)``."""
    found = []
    for pid in pids:
        for algorithm in algorithms:
            path = error_path(tmp_dir, pid, algorithm)
            try:
                text = tmpdir.read_text(path)
            except OSError:
                continue
            path.unlink(missing_ok=True)
            found.append((pid, algorithm, text))
    return found
