"""``skyline-analyzer seed``: send synthetic metrics to a running Horizon and check the analysis flags one.

Like the original ``utils/seed_data.py``: it sends a day's worth of datapoints per metric, the first metric
ending in a spike, over UDP or the pickle protocol, waits until Redis holds them, then runs the analysis
(:func:`skyline_analyzer.detection.engine.analyse`, the daemon's own entry point) on what Horizon stored. The seeded
metrics' keys are deleted first, so a second seed counts only its own datapoints.

Horizon ignores datapoints older than ``MAX_RESOLUTION`` seconds (1000 by default), so, as the original
did, the timestamps are packed into that window: one a second when a minute apart would not fit.
Exit code 0 when the spiked metric is flagged, 1 when it is not or the data did not all arrive.
"""

from __future__ import annotations

import argparse
import sys
import time

import redis

from skyline_analyzer import config, connections, keys, storage, synthetic
from skyline_analyzer.codec import decode
from skyline_analyzer.config import Settings
from skyline_analyzer.detection import engine
from skyline_analyzer.harness import wait_until_stored
from skyline_analyzer.horizon.senders import send_pickle, send_udp

#: Seconds kept between the oldest datapoint sent and Horizon's MAX_RESOLUTION cut-off.
MARGIN = 60
#: Datagrams a second the UDP seeder sends (the kernel buffer would drop a faster burst).
UDP_RATE = 5000.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "seed",
        help="send synthetic metrics to a running Horizon and check the analysis flags the anomaly",
        description="Send a day of synthetic datapoints for several metrics (the first ends in a spike) to "
                    "Horizon, wait for them in Redis, and check that the analysis flags the spiked one.",
    )
    parser.add_argument("--protocol", choices=("pickle", "udp"), default="pickle", help="how to send (default pickle)")
    parser.add_argument("--host", default=None, help="Horizon's address (default HORIZON_IP)")
    parser.add_argument("--port", type=int, default=None, help="default PICKLE_PORT or UDP_PORT")
    parser.add_argument("--metrics", type=int, default=10, help="metrics to send, the first anomalous (default 10)")
    parser.add_argument("--points", type=int, default=1440, help="datapoints per metric (default 1440, a day)")
    parser.add_argument("--prefix", default="horizon.test.seed", help="metric name prefix")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the data in Redis")
    parser.set_defaults(handler=run)


def timeline(settings: Settings, points: int) -> tuple[int, int]:
    """``(points, step)``: a minute apart if that fits inside MAX_RESOLUTION, else a second apart."""
    window = settings.MAX_RESOLUTION - MARGIN
    if points * 60 <= window:
        return points, 60
    return max(2, min(points, window)), 1


def run(args: argparse.Namespace) -> int:
    settings = config.load()
    points, step = timeline(settings, args.points)
    now = int(time.time())
    metrics = synthetic.make_metrics(args.metrics, end=now, anomalous=1, points=points, step=step)
    named = {f"{args.prefix}.{name}": series for name, series in metrics.items()}
    names = list(named)
    datapoints = [(name, (ts, value)) for name, series in named.items() for ts, value in series]
    full_keys = [keys.metric(settings.FULL_NAMESPACE, n) for n in names]
    conn = connections.connect(settings)
    try:
        # A fresh start, so that "all arrived" means exactly the datapoints sent now.
        conn.delete(*full_keys)
    except redis.RedisError as exc:
        print(f"error :: Redis at {connections.describe(settings)}: {exc}", file=sys.stderr)
        conn.close()
        return 1
    host = args.host or settings.HORIZON_IP
    port = args.port or (settings.PICKLE_PORT if args.protocol == "pickle" else settings.UDP_PORT)
    print(f"sending {len(names)} metrics x {points} datapoints ({step} s apart) to {host}:{port} over {args.protocol}")
    try:
        if args.protocol == "pickle":
            send_pickle((host, port), datapoints)
        else:
            send_udp((host, port), datapoints, rate=UDP_RATE)
    except OSError as exc:
        print(f"error :: cannot send to Horizon at {host}:{port}: {exc}", file=sys.stderr)
        conn.close()
        return 1
    try:
        wait_until_stored(conn, full_keys, [points] * len(names), args.timeout)
        read, values = storage.fetch(conn, full_keys)
        if len(read) < len(full_keys):
            raise RuntimeError(f"{len(full_keys) - len(read)} metrics could not be read back (cluster slots down)")
        series = [decode(raw, key) for raw, key in zip(values, full_keys, strict=True)]
    except RuntimeError as exc:
        print(f"error :: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"error :: Redis at {connections.describe(settings)}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"all {len(datapoints)} datapoints are in Redis")
    outcomes = engine.analyse(series, full_keys, settings, time.time())
    flagged = [o.name for o in outcomes if o.verdict is not None and o.verdict.anomalous]
    print(f"anomalous: {', '.join(flagged) or 'none'}")
    if full_keys[0] not in flagged:
        print(f"error :: the spiked metric {full_keys[0]} was not flagged", file=sys.stderr)
        return 1
    print(f"ok :: the spiked metric {full_keys[0]} was flagged")
    return 0
