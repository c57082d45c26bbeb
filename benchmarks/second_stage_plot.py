"""Plot one NAB detection the second stage judges: the history, the seasonal neighbours, the decision.

    .venv/bin/python benchmarks/second_stage_plot.py NAB_DIR FILE TIMESTAMP OUT.png

``FILE`` is relative to ``NAB_DIR/data`` and ``TIMESTAMP`` a row's ``YYYY-MM-DD HH:MM:SS``; the stage runs
with its default settings on the history up to that row, as ``benchmarks/nab.py`` runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nab

from skyline_analyzer.detection import second_stage


def main(argv: list[str]) -> int:
    root, name, when, out = Path(argv[0]), argv[1], nab.epoch(argv[2]), Path(argv[3])
    data = nab.read_file(root, name)
    settings = nab.detector_settings("fast")
    parameters = second_stage.Parameters.from_settings(settings)
    row = int(np.searchsorted(data.timestamps, when))
    timestamps, values = data.timestamps[: row + 1], data.values[: row + 1]
    lo = int(np.searchsorted(timestamps, when - parameters.duration))
    history = second_stage.downsample(timestamps[lo:], values[lo:], parameters.resolution)
    day = int(np.searchsorted(timestamps, when - settings.FULL_DURATION, side="right"))
    decision = second_stage.recheck(history, (timestamps[day:], values[day:]), parameters)
    ago = when - history[0]
    periods = np.rint(ago / parameters.period)
    near = (periods >= 1) & (np.abs(ago - periods * parameters.period) <= parameters.window) & (
        ago <= parameters.duration + parameters.window)
    hours = (timestamps[lo:] - when) / 3600
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(hours, values[lo:], lw=0.7, color="0.55", label="series")
    ax.plot((history[0] - when) / 3600, history[1], lw=1.0, color="tab:blue",
            label=f"kept by Horizon ({parameters.resolution:g} s buckets)")
    ax.scatter((history[0][near] - when) / 3600, history[1][near], s=14, color="tab:orange", zorder=3,
               label="seasonal neighbours")
    ax.scatter([0], [values[-3:].mean()], s=60, marker="x", color="tab:red", zorder=4,
               label="first stage's candidate (tail)")
    ax.axvspan(-settings.FULL_DURATION / 3600, 0, color="tab:red", alpha=0.06, label="first stage's window")
    ax.set_xlabel("hours before the candidate")
    ax.set_title(f"{name} at {argv[2]}: " + ("not judged" if decision is None else
                 f"{'reported' if decision.anomalous else 'not reported'} (statistic {decision.statistic:.2f}, "
                 f"threshold {decision.threshold:g})"), fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(decision.reason if decision is not None else "not judged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
