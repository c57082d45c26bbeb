"""What a worker sends its parent over the run's pipe: one typed message per event, dispatched on type.

* :class:`ChunkDone` after every chunk, with the chunk's anomalies: like the original's shared list,
  anomalies found before a worker is killed still reach the run;
* :class:`WorkerDone` at the end, with the counts: like the original's queues, a killed worker contributes
  no counts, and the parent reports its unprocessed metrics (docs/analyzer.md).
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


Message = ChunkDone | WorkerDone
