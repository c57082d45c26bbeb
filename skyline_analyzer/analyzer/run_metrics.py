"""Files algorithms leave in ``SKYLINE_TMP_DIR``: timings and error reports (docs/formats.md#algorithm-timing-files).

Run metrics: for each algorithm actually run, ``"1\\n"`` is appended to ``analyzer.<alg>.count`` and the
elapsed seconds as ``"%.6f\\n"`` to ``analyzer.<alg>.timings``. Several worker processes append at once,
so each flush is a single ``write`` on an ``O_APPEND`` descriptor: the kernel places every such write at
the current end of file in one piece, and lines from different processes never interleave.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import traceback
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Buffered records per algorithm before a flush is forced.
FLUSH_EVERY = 1000
_ERROR_FILE = re.compile(r"analyzer.*.algorithm.error")


def count_path(tmp_dir: Path, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{algorithm}.count"


def timings_path(tmp_dir: Path, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{algorithm}.timings"


def error_path(tmp_dir: Path, pid: int, algorithm: str) -> Path:
    return tmp_dir / f"analyzer.{pid}.{algorithm}.algorithm.error"


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class RunMetricsRecorder:
    """Buffers per-algorithm timings in a worker and appends them to the shared files on :meth:`flush`."""

    def __init__(self, tmp_dir: str | Path) -> None:
        self.tmp_dir = Path(tmp_dir)
        self._pending: dict[str, list[float]] = {}

    def record(self, algorithm: str, seconds: float, runs: int = 1) -> None:
        """``runs`` runs of ``algorithm`` that took ``seconds`` each."""
        pending = self._pending.setdefault(algorithm, [])
        pending.extend([seconds] * runs)
        if len(pending) >= FLUSH_EVERY:
            self.flush()

    def failed(self, algorithm: str, metric_name: str, error: BaseException) -> None:
        """Leave the error file the parent reports after the run, and log the traceback now."""
        record_algorithm_error(self.tmp_dir, algorithm, "".join(traceback.format_exception(error)))
        log.error("error :: algorithm %s raised on %s; its vote is None (counts towards anomalous)",
                  algorithm, metric_name, exc_info=error)

    def flush(self) -> None:
        """Append everything buffered; a missing ``SKYLINE_TMP_DIR`` raises, as in the original."""
        pending, self._pending = self._pending, {}
        for algorithm, timings in pending.items():
            if not timings:
                continue
            _append(count_path(self.tmp_dir, algorithm), "1\n" * len(timings))
            _append(timings_path(self.tmp_dir, algorithm), "".join(f"{t:.6f}\n" for t in timings))


@dataclass(frozen=True)
class AlgorithmTiming:
    """One algorithm's run metrics for a run (the three ``timing.*`` Graphite metrics)."""

    times_run: int
    total_time: float
    median_time: float


def reset_run_metrics(tmp_dir: Path, algorithms: list[str]) -> None:
    """Truncate (or create) both files of every algorithm at the start of a run."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for algorithm in algorithms:
        for path in (count_path(tmp_dir, algorithm), timings_path(tmp_dir, algorithm)):
            path.write_bytes(b"")


def _read_floats(path: Path) -> list[float]:
    return [float(line.replace("'", "")) for line in path.read_text().splitlines() if line.strip()]


def collect_run_metrics(tmp_dir: Path, algorithms: list[str]) -> dict[str, AlgorithmTiming]:
    """Aggregate the timing files; algorithms with no (or unreadable) records are left out."""
    collected = {}
    for algorithm in algorithms:
        try:
            counts = _read_floats(count_path(tmp_dir, algorithm))
            timings = _read_floats(timings_path(tmp_dir, algorithm))
        except (OSError, ValueError):
            continue
        if not counts or not timings:
            continue
        collected[algorithm] = AlgorithmTiming(
            times_run=len(timings),
            total_time=round(sum(timings), 6),
            median_time=round(statistics.median(timings), 6),
        )
    return collected


def record_algorithm_error(tmp_dir: Path, algorithm: str, traceback_text: str) -> bool:
    """Overwrite this process's error file for ``algorithm``; False when it cannot be written."""
    try:
        error_path(tmp_dir, os.getpid(), algorithm).write_text(traceback_text)
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
                text = path.read_text()
            except OSError:
                continue
            path.unlink(missing_ok=True)
            found.append((pid, algorithm, text))
    return found
