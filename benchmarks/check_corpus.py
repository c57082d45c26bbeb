"""Time `skyline-analyzer check`'s analysis over the 60 s vectors corpus: median milliseconds per series.

Two figures, measured in the same run: the verdict alone per series (in-process, repeated, the median of
the per-series medians) and the whole command (process start, file read, JSON out) per series.
This is the reference baseline the fast engine is compared against.

    .venv/bin/python benchmarks/check_corpus.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer import config  # noqa: E402
from skyline_analyzer.cli.series_file import read_series_file  # noqa: E402
from skyline_analyzer.detection.reference import run_selected_algorithm  # noqa: E402
from skyline_analyzer.exceptions import SeriesException  # noqa: E402

CORPUS = REPO / "tests" / "data" / "vectors" / "corpus_60s.input.json.gz"
NOW = 1_700_000_000


def per_series_ms(settings: config.Settings, repeat: int) -> list[float]:
    series = read_series_file(CORPUS)
    medians = []
    with np.errstate(all="ignore"):
        for name, one in series.items():
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                with contextlib.suppress(SeriesException):
                    run_selected_algorithm(one, name, settings, now=NOW)
                samples.append((time.perf_counter() - started) * 1000)
            medians.append(statistics.median(samples))
    return medians


def command_ms(count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings_file = Path(tmp) / "settings.py"
        settings_file.write_text((REPO / "settings.py").read_text() + f"\nSKYLINE_TMP_DIR = {tmp!r}\n")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "skyline_analyzer", "check", str(CORPUS), "--now", str(NOW)],
                       env={**os.environ, "SKYLINE_SETTINGS": str(settings_file)}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return (time.perf_counter() - started) * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = config.Settings({})
    optimized = per_series_ms(settings, args.repeat)
    everything = per_series_ms(settings.replace(RUN_OPTIMIZED_WORKFLOW=False), args.repeat)
    whole = command_ms(len(optimized))
    print(f"corpus_60s: {len(optimized)} series, {args.repeat} repeats each")
    print(f"verdict, early exit     : median {statistics.median(optimized):.3f} ms/series,"
          f" mean {statistics.mean(optimized):.3f}")
    print(f"verdict, all algorithms : median {statistics.median(everything):.3f} ms/series,"
          f" mean {statistics.mean(everything):.3f}")
    print(f"early-exit speed-up     : {statistics.mean(everything) / statistics.mean(optimized):.2f}x (mean)")
    print(f"whole check command     : {whole:.3f} ms/series (process start and I/O included)")


if __name__ == "__main__":
    main()
