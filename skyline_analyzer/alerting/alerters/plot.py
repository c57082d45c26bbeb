"""The Redis data plot attached to smtp alerts (docs/alerts.md#alerters): a PNG of the series with its statistics.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state), so alerts rendered in several
threads do not share a figure; a lock serialises the drawing itself, which matplotlib does not promise to
be thread-safe.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from skyline_analyzer import codec, excerpt, keys
from skyline_analyzer.config import Settings

log = logging.getLogger(__name__)

_DRAWING = threading.Lock()


@dataclass(frozen=True)
class SeriesStats:
    """The figures printed under the plot: sample std, 3-sigma band around the mean."""

    median: float
    maximum: float
    minimum: float
    mean: float
    std: float

    @property
    def three_sigma(self) -> float:
        return 3 * self.std

    @property
    def upper(self) -> float:
        return self.mean + self.three_sigma

    @property
    def lower(self) -> float:
        return self.mean - self.three_sigma


def non_negative_derivative(pairs: Sequence[Sequence[Any]]) -> list[tuple[Any, Any]]:
    """Graphite's nonNegativeDerivative: the step from the previous value; negative steps are dropped."""
    out = []
    previous = None
    for timestamp, value in pairs:
        if previous is not None and value - previous >= 0:
            out.append((timestamp, value - previous))
        previous = value
    return out


def redis_series(redis: Any, settings: Settings, base: str, derivative: bool) -> list[tuple[Any, Any]]:
    """The metric's datapoints from ``FULL_NAMESPACE + base`` (derivative-transformed when asked).

    An absent key gives ``[]``, and so do a Redis error or an undecodable value (logged): the alert then
    goes without the plot.
    """
    full_key = keys.metric(settings.FULL_NAMESPACE, base)
    try:
        raw = redis.get(full_key)
        pairs = [] if raw is None else codec.decode_pairs(raw, full_key)
    except Exception:
        log.exception("error :: alerters - cannot plot %s", excerpt.escape(full_key))
        return []
    pairs = [p for p in pairs if len(p) == 2 and _number(p[0]) and _number(p[1])]
    return non_negative_derivative(pairs) if derivative else pairs


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x)


def stats(values: Sequence[float]) -> SeriesStats:
    """Median, max, min, mean and the sample standard deviation (0 for a single point)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return SeriesStats(float(np.median(array)), float(array.max()), float(array.min()), float(array.mean()), std)


def render(pairs: Sequence[Sequence[Any]], title: str, anomaly: tuple[Any, Any] | None) -> tuple[bytes, SeriesStats]:
    """The 8x4 in PNG and the statistics; ``anomaly`` ``(timestamp, value)`` is marked with a red ring.

    Colours as v1.2.8: orange series on black, magenta max, blue min, green mean, red 3-sigma bounds (the
    lower one only when positive), legend below, UTC time axis ``%a %H:%M``.
    """
    timestamps = np.array([float(p[0]) for p in pairs])
    values = np.array([float(p[1]) for p in pairs])
    figures = stats(values)
    when = [datetime.fromtimestamp(t, UTC) for t in timestamps]
    with _DRAWING:
        figure = Figure(figsize=(8, 4), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        axes.set_facecolor("black")
        axes.plot(when, values, color="orange", lw=0.6, zorder=3)
        lines = [
            (figures.maximum, "m", "--", 1.0, f"max - {figures.maximum:.2f}"),
            (figures.minimum, "b", "--", 1.0, f"min - {figures.minimum:.2f}"),
            (figures.mean, "g", "--", 1.5, f"mean - {figures.mean:.2f}"),
            (figures.upper, "r", "-", 1.0, f"3σ upper - {figures.upper:.2f}"),
        ]
        if figures.lower > 0:
            lines.append((figures.lower, "r", "-", 1.0, f"3σ lower - {figures.lower:.2f}"))
        for level, colour, style, width, label in lines:
            axes.axhline(level, color=colour, linestyle=style, lw=width, label=label)
        if anomaly is not None:
            axes.plot([datetime.fromtimestamp(float(anomaly[0]), UTC)], [float(anomaly[1])], "o", ms=9,
                      markerfacecolor="none", markeredgecolor="red", markeredgewidth=1.5, zorder=4,
                      label=f"anomalous - {anomaly[1]}")
        # parse_math off: a '$' in a metric name is text, not the start of a formula.
        axes.set_title(title, fontsize=9, parse_math=False)
        axes.xaxis.set_major_formatter(DateFormatter("%a %H:%M", tz=UTC))
        axes.grid(color="lightgray", lw=0.4)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, fontsize=7, frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue(), figures
