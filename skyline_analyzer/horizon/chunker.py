"""Chunks: how a listener hands datapoints to the workers' bounded queues.

Decoded datapoints collect in chunks, one per worker, and a chunk goes onto its worker's queue once it
holds more than ``CHUNK_SIZE`` datapoints, or once the oldest waiting datapoint has waited
``CHUNK_FLUSH_INTERVAL`` seconds (FIX H3), or at stop. A full queue drops the chunk: that is the only place
Horizon sheds valid datapoints, and the drop is counted exactly (``listen.<proto>_chunks_dropped``, in
datapoints, as the original) and logged at most every :data:`DROP_LOG_SECONDS`.

The original had one queue shared by every worker, so two workers could write one metric's datapoints out
of order (until Roomba sorted them), and the Analyzer, which takes the last *decoded* datapoint as the
newest, could analyse an older one. Here a metric always goes to the same worker (:func:`shard`), so the
datapoints of a metric reach Redis in the order the listener accepted them.
"""

from __future__ import annotations

import logging
import queue
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from skyline_analyzer.horizon.counters import CounterRow
from skyline_analyzer.horizon.datapoints import Datapoint

log = logging.getLogger(__name__)

#: Seconds between summaries of dropped chunks (the first drop is logged at once).
DROP_LOG_SECONDS = 10.0
#: Datapoints added before the chunks are checked: a chunk holds at most ``CHUNK_SIZE`` + this many.
SLICE = 512


def shard(name: str, shards: int) -> int:
    """The worker queue a metric's datapoints go to: the same one always, so one worker writes them in order."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % shards if shards > 1 else 0


class Chunker:
    """Datapoints waiting to be queued, one chunk per worker queue: by size, by age, or on :meth:`flush`.

    Parameters
    ----------
    work_queues
        One bounded queue per worker; only ``put_nowait`` is used.
    protocol
        ``pickle``, ``udp`` or ``plaintext``: names the counters and log lines.
    chunk_size
        A chunk is queued once it holds more than this many datapoints.
    flush_interval
        Seconds the oldest waiting datapoint may wait before the chunks are queued anyway.
    """

    def __init__(self, work_queues: Sequence[Any], protocol: str, chunk_size: int, flush_interval: float,
                 counters: CounterRow, clock: Callable[[], float] = time.monotonic) -> None:
        self.queues = list(work_queues)
        self.protocol = protocol
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        self.counters = counters
        self.clock = clock
        self.chunks: list[list[Datapoint]] = [[] for _ in self.queues]
        self.waiting = 0
        self.oldest = 0.0
        self._unlogged_drops = 0
        self._last_drop_log = -DROP_LOG_SECONDS

    def extend(self, datapoints: Sequence[Datapoint]) -> None:
        """Add accepted datapoints; queue every chunk that is now over size."""
        if not datapoints:
            return
        self.counters.add(f"listen.{self.protocol}_datapoints_received", len(datapoints))
        for start in range(0, len(datapoints), SLICE):
            self._add(datapoints[start : start + SLICE])

    def _add(self, datapoints: Sequence[Datapoint]) -> None:
        if not self.waiting:
            self.oldest = self.clock()
        self.waiting += len(datapoints)
        shards = len(self.queues)
        if shards == 1:
            self.chunks[0].extend(datapoints)
        else:
            for datapoint in datapoints:
                self.chunks[shard(datapoint[0], shards)].append(datapoint)
        for index, chunk in enumerate(self.chunks):
            if len(chunk) > self.chunk_size:
                self._put(index)

    def wait(self) -> float:
        """Seconds until the waiting datapoints are due (``flush_interval`` when none wait)."""
        if not self.waiting:
            return self.flush_interval
        return max(0.0, self.oldest + self.flush_interval - self.clock())

    def flush_if_due(self) -> None:
        if self.waiting and self.clock() - self.oldest >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Queue every waiting datapoint now (or drop and count what meets a full queue)."""
        for index, chunk in enumerate(self.chunks):
            if chunk:
                self._put(index)

    def _put(self, index: int) -> None:
        chunk = self.chunks[index]
        self.chunks[index] = []
        # The other chunks keep the deadline of the oldest datapoint: they may go a little early, never late.
        self.waiting -= len(chunk)
        try:
            self.queues[index].put_nowait(chunk)
        except queue.Full:
            self.counters.add(f"listen.{self.protocol}_chunks_dropped", len(chunk))
            self._unlogged_drops += len(chunk)
            now = self.clock()
            if now - self._last_drop_log >= DROP_LOG_SECONDS:
                log.error("horizon.listen :: %s queue is full, dropping %d datapoints", self.protocol,
                          self._unlogged_drops)
                self._unlogged_drops = 0
                self._last_drop_log = now
