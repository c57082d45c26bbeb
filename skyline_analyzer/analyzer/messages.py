"""What a worker sends its parent over the run's pipe: one typed message per event, dispatched on type.

* :class:`ChunkDone` after every chunk, with the chunk's anomalies: like the original's shared list,
  anomalies found before a worker is killed still reach the run;
* :class:`WorkerDone` at the end, with the counts: like the original's queues, a killed worker contributes
  no counts, and the parent reports its unprocessed metrics (docs/analyzer.md).

With ``ANALYZER_EXECUTOR = 'dask'`` a work unit returns one :class:`UnitDone` as its Dask result instead
(docs/scale-out.md): the same summary and anomalies, plus what a forked worker leaves in files (timings,
algorithm errors), which the parent writes once per unit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from skyline_analyzer.detection.anomaly import Anomaly


@dataclass
class WorkerSummary:
    """A worker's counts for its slice."""

    exceptions: Counter[str] = field(default_factory=Counter)
    anomaly_breakdown: Counter[str] = field(default_factory=Counter)
    processed: int = 0
    redis_set_errors: int = 0
    elapsed: float = 0.0


@dataclass(frozen=True)
class ChunkDone:
    """One chunk analysed: the metrics processed so far and the chunk's anomalies."""

    processed: int
    anomalies: list[Anomaly]


@dataclass(frozen=True)
class WorkerDone:
    """The worker finished its slice (or stopped early after a Redis failure) and is exiting."""

    summary: WorkerSummary


@dataclass(frozen=True)
class UnitDone:
    """A Dask work unit finished: its counts and anomalies, the algorithms' timings and error reports."""

    unit_id: int
    summary: WorkerSummary
    anomalies: list[Anomaly]
    timings: dict[str, list[tuple[float, int]]]
    errors: list[tuple[str, str]]
    where: str


Message = ChunkDone | WorkerDone
