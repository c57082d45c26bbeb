"""Fuzz benchmark: 10,000 hostile inputs per protocol at a real Horizon, valid traffic interleaved; the figures.

It starts a private redis-server and ``skyline-analyzer horizon`` on loopback, runs the campaign of
tests/fuzz_campaign.py (the inputs of tests/hostile_inputs.py, every class, seeded) with ``--inputs``
hostile inputs per protocol and valid datapoints from ``--clients`` clients of each protocol, stops Horizon,
and prints: children that died, valid datapoints lost and duplicated, rejections expected and counted per
protocol, datapoints shed on a full queue, the rejection reasons, the resident memory of each listener and
worker before and after, and the wall time. Nothing is asserted.

    .venv/bin/python benchmarks/fuzz_horizon.py                    # 10,000 per protocol
    .venv/bin/python benchmarks/fuzz_horizon.py --inputs 1000      # a quick look
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer.harness import write_settings  # noqa: E402
from tests.fuzz_campaign import PROTOCOLS, Figures, run_campaign  # noqa: E402
from tests.horizon_process import HorizonProcess  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.support import horizon_overrides  # noqa: E402

MB = 1_000_000


def report(figures: Figures, wall: float) -> None:
    print(f"children died: {figures.deaths}")
    print(f"valid datapoints lost: {figures.lost}, duplicated: {figures.duplicated}, "
          f"written by the workers: {figures.written}")
    print(f"UDP datagrams dropped by the kernel: {figures.kernel_drops}")
    print(f"{'protocol':<10} {'hostile':>8} {'valid':>8} {'kept':>8} {'received':>9} {'rejected':>17} {'shed':>6}")
    for protocol in PROTOCOLS:
        s = figures.protocols[protocol]
        print(f"{protocol:<10} {s.hostile:>8} {s.valid_sent:>8} {s.kept_sent:>8} {s.received:>9} "
              f"{s.rejected_counted:>8}/{s.rejected_expected:<8} {s.shed:>6}")
    print("  valid = datapoints of the valid clients; kept = good elements inside hostile pickle frames;")
    print("  rejected = counted/expected (frames, datagrams, lines refused, and pickle elements refused)")
    reasons = ", ".join(f"{reason} {figures.reasons_counted[reason]}" for reason in sorted(figures.reasons_counted))
    print(f"rejections by reason: {reasons}")
    print(f"reasons account for every rejection: {figures.reasons_ok()}")
    print(f"{'process':<20} {'RSS before':>11} {'after':>8} {'growth':>8}")
    for name, before in figures.rss_before.items():
        after = figures.rss_after[name]
        print(f"{name:<20} {before / MB:>9.1f}MB {after / MB:>6.1f}MB {(after - before) / MB:>+6.1f}MB")
    print(f"campaign (sending until Redis holds every valid datapoint): {figures.seconds:.1f} s; "
          f"wall time with start and stop: {wall:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="hostile inputs per protocol (default 10,000)")
    parser.add_argument("--clients", type=int, default=4, help="valid clients per protocol (default 4)")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="skyline-fuzz-") as tmp:
        root = Path(tmp)
        for name in ("log", "pid", "tmp", "redis"):
            (root / name).mkdir()
        server = RedisServer(root / "redis").start()
        try:
            settings = write_settings(root / "settings.py", REPO / "settings.py", {
                "REDIS_SOCKET_PATH": server.socket_path, "LOG_PATH": str(root / "log"),
                "PID_PATH": str(root / "pid"), "SKYLINE_TMP_DIR": str(root / "tmp"), "GRAPHITE_HOST": "",
                # Deep enough that nothing is shed: a missing valid datapoint is then a loss, not overload.
                **horizon_overrides(MAX_QUEUE_SIZE=5000),
            })
            horizon = HorizonProcess(settings)
            print(f"{args.inputs} hostile inputs per protocol, {args.clients} valid clients each, seed {args.seed}")
            try:
                figures = run_campaign(horizon, server.client(), args.inputs, args.seed, clients=args.clients,
                                       settle_timeout=600.0)
            finally:
                horizon.stop()
        finally:
            server.stop()
    report(figures, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
