"""An anomalous metric as the run reports it: in ``anomalies.json``, to alerters and to hand-offs."""

from __future__ import annotations

from dataclasses import dataclass

from skyline_analyzer.detection.series import Number


@dataclass(frozen=True)
class Anomaly:
    """``[value, base_name, timestamp]`` plus the algorithms that voted True.

    ``value`` and ``timestamp`` are the last datapoint exactly as decoded (an int stays an int).
    ``second_stage`` is the second stage's decision (check, statistic, threshold, reason) when it judged
    the metric (docs/second-stage.md), else None.
    """

    value: Number
    base_name: str
    timestamp: Number
    triggered: tuple[str, ...] = ()
    second_stage: dict[str, object] | None = None

    def as_list(self) -> list[object]:
        """The original's anomaly record ``[value, base_name, timestamp]``, plus the second stage's decision
        as a fourth item when it judged the metric."""
        record: list[object] = [self.value, self.base_name, self.timestamp]
        if self.second_stage is not None:
            record.append(self.second_stage)
        return record

    def second_stage_reason(self) -> str | None:
        """The second stage's decision in one line for an alert, or None when it did not judge."""
        if self.second_stage is None:
            return None
        return f"{self.second_stage['check']}: {self.second_stage['reason']}"
