"""The Analyzer parent's per-run work over many metric names: discovery and smtp alert matching.

A private redis-server holds ``--names`` names (1,000,000 by default) in ``metrics.unique_metrics`` (no
values: only the parent's steps are timed). Three smtp ALERTS patterns match about 1 % of them. For
``--runs`` runs, with ``--churn`` of the names replaced between runs (new metrics appear, old ones go),
it times the parent's steps as :meth:`skyline_analyzer.analyzer.daemon.Analyzer.run_once` does them:

* ``SMEMBERS`` of the set, and decoding the members to names;
* smtp alert matching: every name against every smtp pattern (what each run did before the cache: the
  baseline, timed in the same run), and the per-name cache (``matching.MatchCache``) the daemon uses;
* publishing ``analyzer.smtp_alerter_metrics`` (the whole set the first time, then only the changes).

It prints seconds per step and run, the ratio of the baseline matching to steps 6-7, and the memory the
cache adds (the growth of this process's RSS when it is filled, besides the names the run holds anyway).
Nothing is asserted.

    .venv/bin/python benchmarks/discovery.py [--names 1000000] [--runs 4] [--churn 0.01]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer import config, keys  # noqa: E402
from skyline_analyzer.alerting.rules import alert_rules  # noqa: E402
from skyline_analyzer.analyzer.daemon import Analyzer, decode_members  # noqa: E402
from skyline_analyzer.harness import private_redis  # noqa: E402

ALERTS = [("stats\\.web\\d+\\.errors", "smtp", 1800), ("payments", "smtp", 1800), ("skyline", "smtp", 1800),
          ("skyline", "syslog", 1800)]
T = TypeVar("T")
GROUPS = ["stats", "servers", "collectd", "apps"]


def name(n: int) -> str:
    """A Graphite-like name; 1 in 100 matched by an smtp pattern."""
    if n % 100 == 0:
        return f"metrics.stats.web{n % 97}.errors.{n}"
    return f"metrics.{GROUPS[n % 4]}.host{n % 5000}.{['cpu', 'mem', 'disk', 'net'][n % 3]}.metric{n}"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def every_name_matched(settings: config.Settings, names: list[str]) -> set[str]:
    """The baseline: each name's base name tested against each smtp rule, every run."""
    rules = [rule for rule in alert_rules(settings) if rule.alerter == "smtp"]
    namespace = settings.FULL_NAMESPACE
    return {base for base in (keys.base_name(namespace, n) for n in names)
            if any(rule.match(base, exact=False) is not None for rule in rules)}


def timed(function: Callable[..., T], *args: object) -> tuple[T, float]:
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--churn", type=float, default=0.01, help="share of the names replaced between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyline-discovery-") as tmp, private_redis(Path(tmp)) as socket_path:
        settings = config.load().replace(REDIS_SOCKET_PATH=socket_path, REDIS_HOST=None, REDIS_PASSWORD=None,
                                         ALERTS=ALERTS)
        conn = redis.Redis(unix_socket_path=socket_path, socket_timeout=300)
        unique = keys.unique_metrics(settings.FULL_NAMESPACE)
        for first in range(0, args.names, 10_000):
            conn.sadd(unique, *(name(n) for n in range(first, min(args.names, first + 10_000))))
        analyzer = Analyzer(settings)
        next_name = args.names
        print(f"{args.names} names, 3 smtp patterns, {args.churn:.0%} of the names replaced between runs")
        print(f"{'run':>3} {'SMEMBERS':>9} {'decode':>7} {'match all':>10} {'steps 6-7':>10} {'ratio':>6}"
              f" {'matched':>8}")
        for run in range(args.runs):
            if run:
                gone = conn.srandmember(unique, int(args.names * args.churn))
                conn.srem(unique, *gone)
                added = [name(n) for n in range(next_name, next_name + len(gone))]
                next_name += len(gone)
                conn.sadd(unique, *added)
            members, smembers = timed(conn.smembers, unique)
            (names, _), decoding = timed(decode_members, members)
            baseline, matching = timed(every_name_matched, settings, names)
            before = rss_mib()
            _, publishing = timed(analyzer._publish_smtp_alerter_metrics, conn, names)
            grown = rss_mib() - before
            published = conn.scard(keys.SMTP_ALERTER_METRICS)
            assert published == len(baseline)
            print(f"{run:>3} {smembers:8.2f}s {decoding:6.2f}s {matching:9.2f}s {publishing:9.2f}s"
                  f" {matching / publishing:5.1f}x {published:>8}"
                  + (f"   (cache filled: RSS +{grown:.0f} MiB)" if run == 0 else ""), flush=True)
        conn.close()


if __name__ == "__main__":
    main()
