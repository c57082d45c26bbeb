"""``skyline-analyzer tune``: the cheapest ``ALGORITHMS`` order for the operator's own metrics.

Reads what the Analyzer recorded about its recent runs (``keys.ANALYZER_TUNE``, written with
``TUNE_SAMPLE_SIZE`` > 0) and prints each algorithm's trigger rate and cost, the order of least expected
ensemble cost per series under ``CONSENSUS`` with the early exit, and the saving against the current order
(docs/analyzer-optimizations.md#tune). The order never changes a verdict. Exit status 0; 1 on invalid
settings or when Redis cannot be read; 2 when there is no usable record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import redis

from skyline_analyzer import config, connections, keys
from skyline_analyzer.analyzer import tune_history, tune_report
from skyline_analyzer.excerpt import escape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="the ALGORITHMS order that costs least on your metrics, from the Analyzer's own records",
        description="Per-algorithm trigger rates and costs from the Analyzer's recent runs, the ALGORITHMS "
                    "order of least expected cost under CONSENSUS with the early exit, and the saving.",
    )
    parser.add_argument("--runs", type=int, default=None, metavar="N",
                        help="use the newest N runs (default: every run kept, TUNE_HISTORY_RUNS)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    runs = settings.TUNE_HISTORY_RUNS if args.runs is None else args.runs
    if runs < 1:
        print("error :: --runs must be at least 1", file=sys.stderr)
        return 1
    conn = connections.connect(settings)
    try:
        history = tune_history.read_history(conn, settings.ALGORITHMS, runs,
                                            settings.TUNE_HISTORY_RUNS * settings.ANALYZER_PROCESSES)
    except (redis.RedisError, OSError) as exc:
        print(f"error :: could not read {keys.ANALYZER_TUNE} from Redis at {connections.describe(settings)}: "
              f"{escape(str(exc), 200)}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    report = tune_report.build(history, settings)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(render(report)))
    if not history.records:
        print(f"tune :: no usable record in {keys.ANALYZER_TUNE}: the Analyzer writes one per worker per run "
              "while TUNE_SAMPLE_SIZE > 0", file=sys.stderr)
        return 2
    return 0


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.2f} %"


def _micro(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e6 * seconds:.2f}"


def render(report: dict[str, Any]) -> list[str]:
    """The report as text lines."""
    skipped = sum(report["skipped"].values())
    lines = [
        f"runs        {report['runs']} ({_when(report['first_run'])} to {_when(report['last_run'])}), "
        f"{report['records']} records; {skipped} bad records skipped, {report['other_algorithms']} of other "
        "ALGORITHMS left out",
        f"series      {report['analysed']:,} analysed ({report['analysed_per_run'] or 0:,.0f} per run), "
        f"{report['sampled']:,} complete vote vectors sampled; engine {', '.join(report['engines']) or '-'}; "
        f"CONSENSUS {report['consensus']} of {len(report['algorithms'])}, early exit "
        f"{'on' if report['early_exit'] else 'off'}",
        "",
        f"{'algorithm':<29}{'runs':>12}{'µs/run':>10}{'triggered':>11}{'errors':>9}"
        f"{'True*':>10}{'False*':>10}",
    ]
    for row in report["algorithms"]:
        lines.append(f"{row['name']:<29}{row['runs']:>12,}{_micro(row['cost']):>10}{_percent(row['triggered']):>11}"
                     f"{_percent(row['errors']):>9}{_percent(row['sample_true']):>10}"
                     f"{_percent(row['sample_false']):>10}")
    lines.append("* share of the sampled series on which the algorithm votes so, wherever it runs in the order")
    if report["unmeasured"]:
        lines.append(f"never timed (costed as the dearest measured): {', '.join(report['unmeasured'])}")
    lines.append("")
    if report["best"] is None:
        lines.append("no order to recommend: the records hold no timing (ENABLE_ALGORITHM_RUN_METRICS) or no sample")
        return lines
    saving = report["saving"]
    lines += [
        f"current order  {_micro(report['current']['cost'])} µs per series expected"
        + (f" (measured {_micro(report['measured_per_series'])})" if report["measured_per_series"] else ""),
        f"best order     {_micro(report['best']['cost'])} µs per series expected",
        f"saving         {_micro(saving['per_series'])} µs per series ({_percent(saving['share'])}), "
        f"{1e3 * saving['per_run']:.1f} ms per run",
    ]
    if report["best"]["order"] == report["current"]["order"]:
        lines.append("the current ALGORITHMS order is already the cheapest")
    else:
        lines.append("ALGORITHMS = [" + ",\n              ".join(repr(n) for n in report["best"]["order"]) + "]")
    if report["recording_per_run"] is not None:
        lines.append(f"recording     {1e3 * report['recording_per_run']:.2f} ms per run "
                     f"({_percent(report['recording_share'])} of the ensemble time)")
    return lines
