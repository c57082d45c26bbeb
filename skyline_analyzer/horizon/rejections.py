"""Counting and logging what a listener refuses: every input counted, a bounded few logged.

Each refused frame, datagram, line or element is counted twice: by protocol
(``listen.<proto>_frames_rejected`` or ``listen.pickle_datapoints_rejected``) and by reason
(``listen.rejected.<reason>``, :class:`~skyline_analyzer.exceptions.Rejection`). The log gets at most
:data:`LOG_LINES` lines per :data:`LOG_SECONDS` per listener, each one short line with the input rendered
bounded and escaped; what is left out is summed up in one line when the next window opens. A defect
(``unexpected_error``) also logs its traceback, once per listener: it names code, never input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from skyline_analyzer.exceptions import BadInput
from skyline_analyzer.excerpt import escape
from skyline_analyzer.horizon.counters import CounterRow
from skyline_analyzer.horizon.datapoints import Refused

log = logging.getLogger(__name__)

#: Rejection lines one listener logs per window.
LOG_LINES = 10
#: Seconds in a window.
LOG_SECONDS = 10.0


class Rejections:
    """One listener's rejection counters and its rate-limited rejection log."""

    def __init__(self, protocol: str, counters: CounterRow, clock: Callable[[], float] = time.monotonic) -> None:
        self.protocol = protocol
        self.unit = {"pickle": "frame", "udp": "datagram", "plaintext": "line"}[protocol]
        self.counters = counters
        self.clock = clock
        self.window_end = 0.0
        self.logged = 0
        self.suppressed = 0
        self.traceback_logged = False

    def frame(self, exc: BadInput, peer: str) -> None:
        """One frame, datagram or line refused whole."""
        refused = Refused()
        refused.add(exc)
        self.frames(refused, peer)

    def frames(self, refused: Refused, peer: str) -> None:
        """Frames, datagrams or lines refused whole."""
        self._count(f"listen.{self.protocol}_frames_rejected", refused, self.unit, peer)

    def elements(self, refused: Refused, peer: str) -> None:
        """Elements refused inside a frame that was otherwise read."""
        self._count(f"listen.{self.protocol}_datapoints_rejected", refused, "datapoint", peer)

    def _count(self, counter: str, refused: Refused, kind: str, peer: str) -> None:
        total = refused.total()
        if not total:
            return
        self.counters.add(counter, total)
        for reason, count in refused.counts.items():
            self.counters.add(f"listen.rejected.{reason}", count)
        if self._may_log(total):
            if total == 1:
                log.error("horizon.listen :: rejected a %s %s from %s: %s", self.protocol, kind, escape(peer),
                          refused.first)
            else:
                log.error("horizon.listen :: rejected %d %s %ss from %s, the first: %s", total, self.protocol, kind,
                          escape(peer), refused.first)
        first = refused.first
        if first is not None and first.trace and not self.traceback_logged:
            self.traceback_logged = True
            log.error("horizon.listen :: %s listener: the first unexpected error's traceback:\n%s", self.protocol,
                      first.trace)

    def _may_log(self, count: int) -> bool:
        now = self.clock()
        if now >= self.window_end:
            self.close()
            self.window_end = now + LOG_SECONDS
            self.logged = 0
        if self.logged < LOG_LINES:
            self.logged += 1
            return True
        self.suppressed += count
        return False

    def close(self) -> None:
        """Log the sum of what the current window left out (at a window's end, and at stop)."""
        if self.suppressed:
            log.error("horizon.listen :: %d more %s rejections were counted but not logged", self.suppressed,
                      self.protocol)
            self.suppressed = 0
