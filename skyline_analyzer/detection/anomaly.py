"""An anomalous metric as the run reports it: in ``anomalies.json``, to alerters and to hand-offs."""

from __future__ import annotations

from dataclasses import dataclass

from skyline_analyzer.detection.series import Number


@dataclass(frozen=True)
class Anomaly:
    """``[value, base_name, timestamp]`` plus the algorithms that voted True.

    ``value`` and ``timestamp`` are the last datapoint exactly as decoded (an int stays an int).
    """

    value: Number
    base_name: str
    timestamp: Number
    triggered: tuple[str, ...] = ()

    def as_list(self) -> list[Number | str]:
        """The original's anomaly record: ``[value, base_name, timestamp]``."""
        return [self.value, self.base_name, self.timestamp]
