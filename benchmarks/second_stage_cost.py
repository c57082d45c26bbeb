"""The second stage's cost per candidate: decoding a seven-day copy and judging it, against decoding a day.

    .venv/bin/python benchmarks/second_stage_cost.py

Candidates are judged as the worker judges a chunk's: their copies decoded together
(``codec.decode_many``), then one ``second_stage.judge`` call for the batch (``BATCH`` candidates). Three
kinds: a flagged metric (``seasonal_nearest``), a nearly flagged one normal for the time of day
(``seasonal_nearest`` only: most near misses), and a nearly flagged one unusual for it (then
``deseasonalised_ensemble`` too, the batch's re-analyses in one engine call).

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
LOOPS = 20
BATCH = 100


def encoded(timestamps: np.ndarray, values: np.ndarray) -> bytes:
    return codec.encode([(int(t), float(v)) for t, v in zip(timestamps, values, strict=True)])


def per_candidate(copies: list[bytes], recent: tuple[np.ndarray, np.ndarray], flagged: bool,
                  parameters: second_stage.Parameters, settings: Settings) -> tuple[float, list[str]]:
    """Seconds per candidate of decoding a batch's copies and judging it; the checks that decided."""
    names = [f"metrics.m{i}" for i in range(len(copies))]
    started = time.perf_counter()
    for _ in range(LOOPS):
        histories = codec.decode_many(copies, names)
        decisions = second_stage.judge(
            [second_stage.Candidate(name, (h.timestamps, h.values), recent, flagged)  # type: ignore[union-attr]
             for name, h in zip(names, histories, strict=True)], parameters, settings, float(NOW))
    seconds = (time.perf_counter() - started) / (LOOPS * len(copies))
    return seconds, sorted({d.check for d in decisions if d is not None})


def main() -> int:
    settings = Settings({})
    parameters = second_stage.Parameters.from_settings(settings)
    rng = np.random.default_rng(1)
    day = np.arange(NOW - 86400, NOW + 1, 60.0)
    calm = 10 + rng.normal(0, 1, day.shape[0])
    spike = calm.copy()
    spike[-3:] = 30.0
    week = np.arange(NOW - parameters.duration, NOW - parameters.resolution, parameters.resolution)
    copies = [encoded(week, 10 + rng.normal(0, 1, week.shape[0])) for _ in range(BATCH)]
    recent = encoded(day, calm)
    started = time.perf_counter()
    for _ in range(LOOPS * BATCH):
        codec.decode_fast(recent)
    per_decode = (time.perf_counter() - started) / (LOOPS * BATCH)
    print(f"decoding a day of 60 s data ({len(recent)} bytes), as the first stage does for every metric: "
          f"{per_decode * 1e6:.0f} us")
    print(f"per candidate, {BATCH} to a batch, each decoding a {week.shape[0]}-bucket copy of {len(copies[0])} bytes:")
    kinds = (("flagged", spike, True), ("nearly flagged, normal for the time of day", calm, False),
             ("nearly flagged, unusual for the time of day", spike, False))
    for label, values, flagged in kinds:
        seconds, checks = per_candidate(copies, (day, values), flagged, parameters, settings)
        print(f"  {label:<44} {seconds * 1e6:5.0f} us, {seconds / per_decode:4.1f}x the decoding of a day "
              f"(decided by {', '.join(checks)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
