"""``skyline-analyzer check``: run the verdict on series from a file, with the settings in force."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from skyline_analyzer import config
from skyline_analyzer.allocator import tune_allocator
from skyline_analyzer.cli.series_file import read_series_file
from skyline_analyzer.detection import engine
from skyline_analyzer.exceptions import SeriesFormatError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="analyse series from a JSON or CSV file",
        description="Analyse every series in INPUT and print a JSON verdict per series.",
    )
    parser.add_argument("input", type=Path, help='JSON {"name": [[ts, value], ...]} (optionally gzipped) or CSV')
    parser.add_argument("--now", type=float, default=None, help="the current epoch time (default: wall clock)")
    parser.add_argument("--all-algorithms", action="store_true", help="run every algorithm (no early exit)")
    parser.add_argument("--output", type=Path, default=None, help="write the JSON here instead of stdout")
    parser.add_argument("--reference", action="store_true",
                        help="use the per-series reference engine (the oracle) instead of ANALYZER_ENGINE")
    parser.set_defaults(handler=run)


def check_series(series: dict, settings: config.Settings, now: float) -> dict[str, dict[str, Any]]:
    """The verdict of every series, in the output format of the command."""
    results = {}
    names = list(series)
    for name, outcome in zip(names, engine.analyse([series[n] for n in names], names, settings, now), strict=True):
        verdict = outcome.verdict
        if verdict is None:
            results[name] = {"anomalous": False, "ensemble": None, "datapoint": None,
                             "exception": outcome.exception, "triggered": []}
            continue
        results[name] = {
            "anomalous": verdict.anomalous,
            "ensemble": verdict.ensemble,
            "datapoint": verdict.datapoint,
            "exception": None,
            "triggered": verdict.triggered(list(settings.ALGORITHMS)),
        }
    return results


def summary(results: dict[str, dict[str, Any]]) -> str:
    exceptions = Counter(r["exception"] for r in results.values() if r["exception"])
    anomalous = sorted(name for name, r in results.items() if r["anomalous"])
    lines = [f"{len(results)} series: {len(anomalous)} anomalous"
             + "".join(f", {count} {kind}" for kind, count in sorted(exceptions.items()))]
    lines += [f"  anomalous: {name} = {results[name]['datapoint']} ({', '.join(results[name]['triggered'])})"
              for name in anomalous]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    if settings.ENABLE_SECOND_ORDER:
        # The second-order test reads and writes the daemon's trigger history; an ad-hoc check must not.
        print("note :: ENABLE_SECOND_ORDER is not applied by check (it needs the daemon's trigger history)",
              file=sys.stderr)
        settings = settings.replace(ENABLE_SECOND_ORDER=False)
    if args.all_algorithms:
        settings = settings.replace(RUN_OPTIMIZED_WORKFLOW=False)
    if args.reference:
        settings = settings.replace(ANALYZER_ENGINE="reference")
    try:
        series = read_series_file(args.input)
    except (SeriesFormatError, OSError) as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 2
    now = time.time() if args.now is None else args.now
    tune_allocator()
    results = check_series(series, settings, now)
    text = json.dumps(results, indent=1, sort_keys=True)
    if args.output is None:
        sys.stdout.write(text + "\n")
    else:
        args.output.write_text(text + "\n")
    print(summary(results), file=sys.stderr)
    return 0
