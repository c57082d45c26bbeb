"""Counters shared by every Horizon process, reported to Graphite by the agent.

Each child process owns one row of a shared-memory array and is its only writer, so adding takes no lock:
a process killed mid-update can never leave a lock held for the others. The agent reads every row and
reports the growth since its previous read. A restarted child keeps its row and carries on from there.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

from skyline_analyzer.exceptions import Rejection

PROTOCOLS = ("pickle", "udp", "plaintext")
TCP_PROTOCOLS = ("pickle", "plaintext")

#: Every counter, named as the metric it is reported as (under ``skyline.horizon.<SERVER_METRICS_NAME>.``).
NAMES: tuple[str, ...] = (
    *(f"listen.{proto}_datapoints_received" for proto in PROTOCOLS),
    # Datapoints in chunks dropped because the queue was full (the original's metric names).
    *(f"listen.{proto}_chunks_dropped" for proto in PROTOCOLS),
    # Pickle frames, datagrams and lines refused whole.
    *(f"listen.{proto}_frames_rejected" for proto in PROTOCOLS),
    # Bad elements inside an otherwise readable pickle frame.
    "listen.pickle_datapoints_rejected",
    # Every refusal above once more, by reason.
    *(f"listen.rejected.{reason}" for reason in Rejection),
    # TCP connections: accepted, refused at the limit, evicted for a newcomer, closed when idle, closed to
    # keep the bytes buffered within the limit, and accept() failures for want of file descriptors.
    *(f"listen.{proto}_{event}" for proto in TCP_PROTOCOLS
      for event in ("connections", "connections_refused", "connections_evicted", "connections_timed_out",
                    "connections_overflowed", "accept_errors")),
    "worker.datapoints_written",
    "worker.datapoints_skipped",
    "worker.datapoints_too_old",
    # Datapoints lost because Redis failed while a batch was written.
    "worker.datapoints_failed",
    # Datapoints a worker could not turn into a Redis write (the listeners' checks should make this 0).
    "worker.datapoints_rejected",
    # Children the agent found dead, each followed by a restart of every child.
    "agent.child_deaths",
)

_INDEX = {name: i for i, name in enumerate(NAMES)}


class CounterRow:
    """One process's counters: only that process calls :meth:`add`."""

    def __init__(self, array: multiprocessing.Array, row: int) -> None:  # type: ignore[valid-type]
        self._array = array
        self._offset = row * len(NAMES)

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name`` (a KeyError names an unknown counter)."""
        self._array[self._offset + _INDEX[name]] += amount


class Counters:
    """``rows`` rows of named unsigned counters in shared memory; create before forking the writers."""

    def __init__(self, rows: int, context: BaseContext | None = None) -> None:
        context = context or multiprocessing.get_context("fork")
        self.rows = rows
        self._array = context.Array("Q", rows * len(NAMES), lock=False)
        self._reported = [0] * len(NAMES)

    def row(self, index: int) -> CounterRow:
        """The writer of row ``index`` (one per child process)."""
        if not 0 <= index < self.rows:
            raise IndexError(f"counter row {index} of {self.rows}")
        return CounterRow(self._array, index)

    def totals(self) -> dict[str, int]:
        """Every counter summed over the rows, since the counters were made."""
        values = self._array[:]
        width = len(NAMES)
        return {name: sum(values[i::width]) for i, name in enumerate(NAMES)}

    def take(self) -> dict[str, int]:
        """Every counter's growth since the last take (the agent is the only caller)."""
        totals = self.totals()
        growth = {name: totals[name] - self._reported[i] for i, name in enumerate(NAMES)}
        self._reported = [totals[name] for name in NAMES]
        return growth


def report_metrics(values: dict[str, int], queue_sizes: list[int]) -> list[tuple[str, int | float]]:
    """The ``(name, value)`` pairs one reporting interval sends, from a :meth:`Counters.take`.

    Every counter is sent, zeros included, so a graph shows 0 rather than a gap (docs/graphite.md#zeros-not-gaps).
    ``worker.queue_size`` is the mean of the queue sizes sampled in the interval (chunks waiting in every
    worker's queue; true division, as the original), left out when there is no sample.
    """
    metrics: list[tuple[str, int | float]] = list(values.items())
    if queue_sizes:
        metrics.append(("worker.queue_size", sum(queue_sizes) / len(queue_sizes)))
    return metrics


def interval_start(now: float, interval: int) -> int:
    """The start of the reporting interval holding ``now``: a multiple of ``interval`` seconds since the epoch.

    A report is stamped with the start of the interval it sums, so reports aligned to a storage schema's
    step each land in a bucket of their own (docs/graphite.md#horizons-counters).
    """
    return int(now // interval * interval)
