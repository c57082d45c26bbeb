"""The second stage's cost per candidate: decoding a seven-day copy and each check, against decoding a day.

    .venv/bin/python benchmarks/second_stage_cost.py

The baseline, measured in the same run, is what the first stage does for every metric before any
algorithm: decoding a day of 60 s data. Nothing is asserted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skyline_analyzer import codec
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import second_stage

NOW = 1_700_000_000
LOOPS = 2000


def encoded(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    return codec.encode([(int(t), float(v)) for t, v in zip(timestamps, values, strict=True)])


def main() -> int:
    settings = Settings({})
    parameters = second_stage.Parameters.from_settings(settings)
    rng = np.random.default_rng(1)
    day = np.arange(NOW - 86400, NOW + 1, 60.0)
    day_values = 10 + rng.normal(0, 1, day.shape[0])
    week = np.arange(NOW - parameters.duration, NOW - parameters.resolution, parameters.resolution)
    copy = encoded(week, 10 + rng.normal(0, 1, week.shape[0]))
    recent = encoded(day, day_values)
    started = time.perf_counter()
    for _ in range(LOOPS):
        history = codec.decode_fast(copy)
        second_stage.recheck((history.timestamps, history.values), (day, day_values), parameters)
    per_candidate = (time.perf_counter() - started) / LOOPS
    started = time.perf_counter()
    for _ in range(LOOPS // 4):
        history = codec.decode_fast(copy)
        second_stage.reanalyse((history.timestamps, history.values), (day, day_values), parameters, settings,
                               float(NOW))
    per_reanalysis = (time.perf_counter() - started) / (LOOPS // 4)
    started = time.perf_counter()
    for _ in range(LOOPS):
        codec.decode_fast(recent)
    per_decode = (time.perf_counter() - started) / LOOPS
    print(f"decoding a day of 60 s data ({len(recent)} bytes), as the first stage does for every metric: "
          f"{per_decode * 1e6:.0f} us")
    print(f"a flagged candidate (decode a {week.shape[0]}-bucket copy of {len(copy)} bytes, seasonal_nearest): "
          f"{per_candidate * 1e6:.0f} us, {per_candidate / per_decode:.1f}x the decoding of a day")
    print(f"a nearly flagged candidate (decode the copy, deseasonalised_ensemble of {len(settings.ALGORITHMS)} "
          f"algorithms): {per_reanalysis * 1e6:.0f} us, {per_reanalysis / per_decode:.1f}x the decoding of a day")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
