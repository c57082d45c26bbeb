"""What ``check`` prints: one JSON result per series, written as it is known, and the summary on stderr.

The output is one JSON object keyed by series name, in input order, one series per line (shown wrapped here)::

    {
    "name": {"anomalous": true, "datapoint": 900, "exception": null, "triggered": [...],
             "votes": {...}, "ensemble": [...]}
    }

``votes`` names each algorithm's vote (``true``, ``false``, or ``null`` when the algorithm raised);
``ensemble`` holds the same votes as a list in ``ALGORITHMS`` order, as the original reported them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from skyline_analyzer import excerpt
from skyline_analyzer.detection.engine import Outcome

#: Anomalous series the summary lists by name; the rest are counted.
SUMMARY_NAMES = 20


def result(outcome: Outcome, algorithms: Sequence[str]) -> dict[str, Any]:
    """The output entry of one series."""
    verdict = outcome.verdict
    if verdict is None:
        return {"anomalous": False, "datapoint": None, "exception": outcome.exception, "triggered": [],
                "votes": None, "ensemble": None}
    return {
        "anomalous": verdict.anomalous,
        "datapoint": verdict.datapoint,
        "exception": None,
        "triggered": verdict.triggered(list(algorithms)),
        "votes": dict(zip(algorithms, verdict.ensemble, strict=True)),
        "ensemble": verdict.ensemble,
    }


class ResultWriter:
    """Writes the JSON object of results one entry at a time; :meth:`close` ends it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._count = 0

    def write(self, name: str, entry: dict[str, Any]) -> None:
        separator = "{\n" if self._count == 0 else ",\n"
        self._stream.write(separator + json.dumps(name) + ": " + json.dumps(entry))
        self._count += 1

    def close(self) -> None:
        self._stream.write("{}\n" if self._count == 0 else "\n}\n")
        self._stream.flush()


@dataclass
class Summary:
    """Counts over every series, and the first anomalous ones by name."""

    series: int = 0
    anomalous: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)
    listed: list[str] = field(default_factory=list)

    def add(self, name: str, entry: dict[str, Any]) -> None:
        self.series += 1
        if entry["exception"]:
            self.exceptions[entry["exception"]] += 1
        if entry["anomalous"]:
            self.anomalous += 1
            if len(self.listed) < SUMMARY_NAMES:
                self.listed.append(f"  anomalous: {excerpt.escape(name, 200)} = {entry['datapoint']}"
                                   f" ({', '.join(entry['triggered'])})")

    def render(self) -> str:
        lines = [f"{self.series} series: {self.anomalous} anomalous"
                 + "".join(f", {count} {kind}" for kind, count in sorted(self.exceptions.items()))]
        lines += self.listed
        if self.anomalous > len(self.listed):
            lines.append(f"  ... and {self.anomalous - len(self.listed)} more anomalous")
        return "\n".join(lines)
