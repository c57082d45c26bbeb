"""The smtp alert's plot: the words for its window, its title and labels, and the PNG it renders."""

from __future__ import annotations

import io
from datetime import UTC

import pytest
from PIL import Image

from skyline_analyzer.alerting.alerters import plot

NOW = 1_700_000_000  # 2023-11-14 22:13:20 UTC


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "0 seconds"),
    (0.9, "0 seconds"),
    (-5, "0 seconds"),
    (1, "1 second"),
    (45, "45 seconds"),
    (60, "1 minute"),
    (61, "1 minute 1 second"),
    (960, "16 minutes"),
    (990, "16 minutes 30 seconds"),
    (3600, "1 hour"),
    (3630, "1 hour"),  # the third unit is dropped, never rounded up
    (5400, "1 hour 30 minutes"),
    (86340, "23 hours 59 minutes"),
    (86400, "1 day"),
    (90000, "1 day 1 hour"),
    (604800, "7 days"),
])
def test_duration(seconds, words):
    assert plot.duration(seconds) == words


@pytest.mark.parametrize(("first", "last", "words"), [
    (NOW - 960, NOW, "16 minutes to 2023-11-14 22:13:20 UTC"),
    (NOW - 86400, NOW, "1 day to 2023-11-14 22:13:20 UTC"),
    (NOW - 86340, NOW, "23 hours 59 minutes to 2023-11-14 22:13:20 UTC"),
    (NOW, NOW, "1 datapoint at 2023-11-14 22:13:20 UTC"),
    (NOW - 59.5, NOW + 0.5, "1 minute to 2023-11-14 22:13:20 UTC"),
])
def test_window(first, last, words):
    assert plot.window(first, last) == words


@pytest.mark.parametrize(("context", "base", "value", "first", "derivative", "expected"), [
    ("Analyzer", "stats.requests", 500.0, NOW - 960, False,
     "Skyline Analyzer - ALERT - Redis data, 16 minutes to 2023-11-14 22:13:20 UTC\n"
     "stats.requests - anomalous value: 500.0"),
    ("Mirage", "stats.bytes", 7, NOW - 86400, True,
     "Skyline Mirage - ALERT - Redis data (derivative graph), 1 day to 2023-11-14 22:13:20 UTC\n"
     "stats.bytes - anomalous value: 7"),
    ("Analyzer", "a\nb\x1b[31m\u00e9", 1.5, NOW, False,
     "Skyline Analyzer - ALERT - Redis data, 1 datapoint at 2023-11-14 22:13:20 UTC\n"
     "a\\nb\\x1b[31m\\xe9 - anomalous value: 1.5"),
    ("Analyzer", "x" * 1000, 1.0, NOW - 60, False,
     "Skyline Analyzer - ALERT - Redis data, 1 minute to 2023-11-14 22:13:20 UTC\n"
     f"{'x' * plot.NAME_LIMIT}... - anomalous value: 1.0"),
])
def test_title(context, base, value, first, derivative, expected):
    assert plot.title(context, base, value, first, NOW, derivative) == expected


@pytest.mark.parametrize(("derivative", "labels"), [
    (False, ("time (UTC)", "value")),
    (True, ("time (UTC)", "non-negative derivative of the value")),
])
def test_axis_labels(derivative, labels):
    assert plot.axis_labels(derivative) == labels


SERIES = [(NOW - 960 + 60 * i, 10.0 + i % 3) for i in range(16)] + [(NOW, 90.0)]


@pytest.mark.parametrize("derivative", [False, True])
def test_the_figure_carries_the_title_labels_and_timezone(derivative):
    heading = plot.title("Analyzer", "stats.requests", 90.0, SERIES[0][0], NOW, derivative)
    figure, figures = plot.draw(SERIES, heading, (NOW, 90.0), derivative)
    [axes] = figure.axes
    assert axes.get_title() == heading
    assert (axes.get_xlabel(), axes.get_ylabel()) == plot.axis_labels(derivative)
    formatter = axes.xaxis.get_major_formatter()
    assert formatter.tz is UTC
    # The last tick lies within the data: 22:13:20 UTC is drawn as "Tue 22:1x", whatever the host's zone.
    assert formatter(axes.get_xlim()[1]).startswith("Tue 22:1")
    assert (figures.maximum, figures.minimum) == (90.0, 10.0)


def test_render_gives_a_png_that_decodes_with_the_title_in_it():
    heading = plot.title("Analyzer", "stats.$x^{2}$", 90.0, SERIES[0][0], NOW, False)
    png, figures = plot.render(SERIES, heading, (NOW, 90.0))
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert (image.format, image.size, image.mode) == ("PNG", (800, 400), "RGBA")
        assert image.info["Title"] == heading
        # Not a blank canvas: the black plot area and the orange series are both there.
        colours = {colour for _, colour in image.getcolors(maxcolors=1 << 16)}
    assert (0, 0, 0, 255) in colours
    assert any(r > 200 and 100 < g < 200 and b < 80 for r, g, b, _ in colours)
    assert figures.mean == pytest.approx(sum(v for _, v in SERIES) / len(SERIES))
