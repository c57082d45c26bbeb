"""Peak memory and time of ``skyline-analyzer check`` on a large input, against a smaller baseline in the same run.

Writes a JSON object of series (synthetic shapes, one in 50 ending in a spike, 60 s apart) for the
baseline and the large count, runs the whole command on each as an operator would (a child process,
output to a file) and prints the child's peak RSS (``wait4``) and wall time, and their ratios. Memory
that stays flat as the input grows shows as an RSS ratio near 1 while the input ratio is 10.

    .venv/bin/python benchmarks/check_large.py [--series 20000] [--baseline 2000] [--points 1440]
        [--format json|graphite-json|graphite-csv]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer import synthetic  # noqa: E402

NOW = 1_700_000_000
STEP = 60


def _series(count: int, points: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    timestamps = NOW - STEP * np.arange(points - 1, -1, -1, dtype=np.int64)
    for n in range(count):
        kind = synthetic.KINDS[n % len(synthetic.KINDS)]
        values = np.round(synthetic.make_values(kind, points, seed=n, spike=n % 50 == 0), 3)
        yield f"bench.{kind}.{n:06d}", timestamps, values


def write_input(path: Path, fmt: str, count: int, points: int) -> None:
    with path.open("w") as out:
        if fmt == "json":
            out.write("{")
            for n, (name, stamps, values) in enumerate(_series(count, points)):
                pairs = ", ".join(f"[{t}, {v!r}]" for t, v in zip(stamps.tolist(), values.tolist(), strict=True))
                out.write(("," if n else "") + f"\n{json.dumps(name)}: [{pairs}]")
            out.write("\n}\n")
        elif fmt == "graphite-json":
            out.write("[")
            for n, (name, stamps, values) in enumerate(_series(count, points)):
                pairs = ", ".join(f"[{v!r}, {t}]" for t, v in zip(stamps.tolist(), values.tolist(), strict=True))
                out.write(("," if n else "") + f'\n{{"target": {json.dumps(name)}, "datapoints": [{pairs}]}}')
            out.write("\n]\n")
        else:
            times = [datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
                     for t in _series_times(points)]
            for name, _, values in _series(count, points):
                out.write("".join(f"{name},{t},{v!r}\n" for t, v in zip(times, values.tolist(), strict=True)))


def _series_times(points: int) -> list[int]:
    return (NOW - STEP * np.arange(points - 1, -1, -1, dtype=np.int64)).tolist()


def measure(path: Path, settings: Path, output: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``check`` run."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "skyline_analyzer", "check", str(path), "--now", str(NOW), "--output", str(output)],
        env={**os.environ, "SKYLINE_SETTINGS": str(settings)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"check failed: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    return usage.ru_maxrss / 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    parser.add_argument("--points", type=int, default=1440)
    parser.add_argument("--format", choices=("json", "graphite-json", "graphite-csv"), default="json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        settings = directory / "settings.py"
        settings.write_text((REPO / "settings.py").read_text() + f"\nSKYLINE_TMP_DIR = {tmp!r}\n")
        rows = []
        for count in (args.baseline, args.series):
            path = directory / f"input-{count}.{args.format}"
            write_input(path, args.format, count, args.points)
            size = path.stat().st_size / 2**20
            rss, seconds = measure(path, settings, directory / "out.json")
            results = json.loads((directory / "out.json").read_text())
            anomalous = sum(1 for r in results.values() if r["anomalous"])
            rows.append((count, size, rss, seconds, anomalous))
            path.unlink()
    print(f"check on {args.format}, {args.points} points a series (child process peak RSS, wall time)")
    for count, size, rss, seconds, anomalous in rows:
        print(f"  {count:>7,} series  input {size:8.1f} MiB  peak RSS {rss:7.1f} MiB  time {seconds:7.2f} s"
              f"  ({seconds / count * 1000:.3f} ms/series, {anomalous} anomalous)")
    (base, large) = rows
    print(f"  ratios large/baseline: series {large[0] / base[0]:.1f}x  input {large[1] / base[1]:.1f}x"
          f"  peak RSS {large[2] / base[2]:.2f}x  time {large[3] / base[3]:.2f}x")


if __name__ == "__main__":
    main()
