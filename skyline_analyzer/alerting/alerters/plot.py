"""The Redis data plot attached to smtp alerts (docs/alerts.md#the-alert-mail): a PNG of the series.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state), so alerts rendered in several
threads do not share a figure; a lock serialises the drawing itself, which matplotlib does not promise to
be thread-safe. The title states the window the data really covers (a metric with 16 minutes of data is
not "24 hours"), and the time axis is labelled with its timezone, UTC like the rest of the mail.
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

#: Re-entrant: :func:`render` holds it across :func:`draw` and the PNG encoding.
_DRAWING = threading.RLock()
#: Characters of a metric name kept in a plot title (escaped; longer names end with ...).
NAME_LIMIT = 200
#: The plot's timezone: the mail states every time in UTC.
TIMEZONE = UTC
#: The units a window is told in, largest first.
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


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


def duration(seconds: float) -> str:
    """A span in words, in its largest unit and the next one down: ``16 minutes``, ``23 hours 59 minutes``.

    A part that is 0 is left out (``2 days``); the smaller part is truncated, so the words never claim more
    data than there is. Under a second is ``0 seconds``.
    """
    left = max(int(seconds), 0)
    # The units that fit form a tail of _UNITS: its first two are the largest that fits and the next one.
    fitting = [(size, unit) for size, unit in _UNITS if left >= size][:2]
    if not fitting:
        return "0 seconds"
    words = []
    for size, unit in fitting:
        count, left = divmod(left, size)
        if count:
            words.append(f"{count} {unit}" if count == 1 else f"{count} {unit}s")
    return " ".join(words)


def window(first: float, last: float) -> str:
    """What the plotted data covers: ``16 minutes to 2023-11-14 22:13:20 UTC``, or one datapoint's time."""
    end = datetime.fromtimestamp(float(last), TIMEZONE).strftime("%Y-%m-%d %H:%M:%S %Z")
    if last <= first:
        return f"1 datapoint at {end}"
    return f"{duration(float(last) - float(first))} to {end}"


def title(context: str, base: str, value: Any, first: float, last: float, derivative: bool) -> str:
    """The plot's two-line title: what the data covers, then the metric (escaped, bounded) and its value."""
    graph = " (derivative graph)" if derivative else ""
    return (f"Skyline {context} - ALERT - Redis data{graph}, {window(first, last)}\n"
            f"{excerpt.escape(base, NAME_LIMIT)} - anomalous value: {value}")


def axis_labels(derivative: bool) -> tuple[str, str]:
    """The x and y labels: the time axis names its timezone, the y axis says when it is a derivative."""
    return f"time ({TIMEZONE.tzname(None)})", "non-negative derivative of the value" if derivative else "value"


def draw(pairs: Sequence[Sequence[Any]], heading: str, anomaly: tuple[Any, Any] | None,
         derivative: bool) -> tuple[Figure, SeriesStats]:
    """The 8x4 in figure and the statistics; ``anomaly`` ``(timestamp, value)`` is marked with a red ring.

    Colours as v1.2.8: orange series on black, magenta max, blue min, green mean, red 3-sigma bounds (the
    lower one only when positive), legend below, time axis ``%a %H:%M`` in :data:`TIMEZONE`.
    """
    timestamps = np.array([float(p[0]) for p in pairs])
    values = np.array([float(p[1]) for p in pairs])
    figures = stats(values)
    when = [datetime.fromtimestamp(t, TIMEZONE) for t in timestamps]
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
            axes.plot([datetime.fromtimestamp(float(anomaly[0]), TIMEZONE)], [float(anomaly[1])], "o", ms=9,
                      markerfacecolor="none", markeredgecolor="red", markeredgewidth=1.5, zorder=4,
                      label=f"anomalous - {anomaly[1]}")
        # parse_math off: a '$' in a metric name is text, not the start of a formula.
        axes.set_title(heading, fontsize=9, parse_math=False)
        x_label, y_label = axis_labels(derivative)
        axes.set_xlabel(x_label, fontsize=8)
        axes.set_ylabel(y_label, fontsize=8)
        axes.xaxis.set_major_formatter(DateFormatter("%a %H:%M", tz=TIMEZONE))
        axes.tick_params(labelsize=7)
        axes.grid(color="lightgray", lw=0.4)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize=7, frameon=False)
        figure.tight_layout()
    return figure, figures


def render(pairs: Sequence[Sequence[Any]], heading: str, anomaly: tuple[Any, Any] | None,
           derivative: bool = False) -> tuple[bytes, SeriesStats]:
    """The PNG of :func:`draw` and the statistics; the title is also the PNG's ``Title`` text chunk."""
    with _DRAWING:
        figure, figures = draw(pairs, heading, anomaly, derivative)
        buffer = io.BytesIO()
        # A PNG text chunk is Latin-1: the title qualifies, its metric name being escaped to printable ASCII.
        figure.savefig(buffer, format="png", metadata={"Title": heading})
    return buffer.getvalue(), figures
