"""Small charts drawn on the server: a series reduced to a few hundred points, as an SVG image.

The Now page shows one per anomaly as a lazily loaded ``<img>``, so a page of a thousand anomalies asks
only for the charts in view. The SVG holds numbers and fixed markup only, never a metric name.
"""

from __future__ import annotations

import itertools

import numpy as np

from skyline_analyzer.detection.series import Series

WIDTH, HEIGHT, PAD = 240, 48, 3


def downsample(timestamps: np.ndarray, values: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points: the minimum and the maximum of each of ``buckets`` equal slices.

    Keeping both extremes of every slice keeps every spike visible; the points stay in time order.
    """
    n = values.shape[0]
    if n <= 2 * buckets:
        return timestamps, values
    bounds = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = []
    for start, stop in itertools.pairwise(bounds):
        low = start + int(np.argmin(values[start:stop]))
        high = start + int(np.argmax(values[start:stop]))
        keep.extend(sorted({low, high}))
    index = np.asarray(keep, dtype=np.int64)
    return timestamps[index], values[index]


def svg(series: Series, mark: float | None) -> str:
    """The series as a polyline, the point at timestamp ``mark`` (else the last point) as a red dot."""
    if len(series) == 0:
        return _document("")
    ts, vs = downsample(series.timestamps, series.values, WIDTH // 2)
    t0, t1 = float(ts.min()), float(ts.max())
    v0, v1 = float(vs.min()), float(vs.max())

    def x(t: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def y(v: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * ((v - v0) / (v1 - v0) if v1 > v0 else 0.5)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts.tolist(), vs.tolist(), strict=True))
    at = np.flatnonzero(series.timestamps == mark) if mark is not None else np.empty(0, dtype=np.int64)
    index = int(at[-1]) if at.size else len(series) - 1
    dot_t, dot_v = float(series.timestamps[index]), float(series.values[index])
    body = (f'<polyline points="{points}" fill="none" stroke="#3b6ea5" stroke-width="1"/>'
            f'<circle cx="{x(dot_t):.1f}" cy="{y(dot_v):.1f}" r="3" fill="#d62828"/>')
    return _document(body)


def _document(body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">{body}</svg>')
