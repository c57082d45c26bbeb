"""Ingest benchmark: datapoints per second through each Horizon protocol into a private Redis, and the drops.

For each protocol it starts a private redis-server and a real ``skyline-analyzer horizon`` process on
loopback, then one sender process offers ``--rate`` datapoints a second (spread over ``--metrics`` metrics,
each metric's timestamps one second apart from now on) for ``--duration`` seconds: carbon-relay pickle
frames of 500, one msgpack datagram per datapoint, or plaintext lines. It then stops Horizon (which writes
out everything it accepted) and prints, from Horizon's own counters, what was received, dropped on a full
queue, rejected and written, the datapoints found in Redis, the rate actually offered and the rate written
over the sending time. For UDP it also prints the growth of the kernel's UDP receive-buffer errors
(system-wide), which no listener can see. Nothing is asserted.

    .venv/bin/python benchmarks/ingest.py                          # 50,000/s for 60 s, every protocol
    .venv/bin/python benchmarks/ingest.py --duration 5             # a quick look
    .venv/bin/python benchmarks/ingest.py --rate 0 --duration 10   # as fast as the sender can go
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer.codec import decode_pairs  # noqa: E402
from skyline_analyzer.harness import free_ports, private_redis  # noqa: E402
from skyline_analyzer.horizon.senders import pickle_frame, plaintext_lines  # noqa: E402

PROTOCOLS = ("pickle", "udp", "plaintext")
#: Datapoints per write the senders make: a carbon-relay frame, a buffer of lines.
BATCH = 500
#: Seconds per pacing step of a sender.
TICK = 0.01


def udp_rcvbuf_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def send(protocol: str, address: tuple[str, int], rate: float, duration: float, metrics: int,
         sent: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    """Offer ``rate`` datapoints a second (0: as fast as possible) for ``duration`` seconds."""
    names = [f"bench.ingest.m{n:06d}" for n in range(metrics)]
    rng = random.Random(1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if protocol == "udp" else socket.create_connection(address)
    started = time.monotonic()
    count = 0
    # Each metric's k-th datapoint is stamped start + k: no duplicate timestamps for Roomba to fold.
    first_stamp = int(time.time())
    try:
        while (now := time.monotonic()) - started < duration:
            if rate and count >= rate * (now - started):
                time.sleep(TICK)
                continue
            batch = []
            for sequence in range(count, count + BATCH):
                stamp = first_stamp + sequence // metrics
                batch.append((names[sequence % metrics], (stamp, round(rng.random() * 100, 3))))
            if protocol == "pickle":
                sock.sendall(pickle_frame(batch))
            elif protocol == "plaintext":
                sock.sendall(plaintext_lines(batch))
            else:
                for name, pair in batch:
                    sock.sendto(msgpack.packb((name, list(pair))), address)
            count += len(batch)
    finally:
        sock.close()
        sent.value = count


def horizon_counters(log: Path) -> dict[str, float]:
    """Every counter summed over the reports in Horizon's log."""
    totals: dict[str, float] = {}
    for line in log.read_text().splitlines():
        if " :: horizon :: listen." not in line:
            continue
        for name, value in re.findall(r"([a-z_.]+) ([0-9.]+)", line.split(" :: horizon :: ", 1)[1]):
            totals[name] = totals.get(name, 0) + float(value)
    return totals


def redis_datapoints(socket_path: str) -> int:
    conn = redis.Redis(unix_socket_path=socket_path)
    total = 0
    for key in conn.smembers("metrics.unique_metrics"):
        total += len(decode_pairs(conn.get(key) or b""))
    conn.close()
    return total


def run_protocol(protocol: str, args: argparse.Namespace, directory: Path) -> dict[str, float]:
    for name in ("log", "pid", "tmp"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    with private_redis(directory) as socket_path:
        ports = free_ports()
        overrides = {"REDIS_SOCKET_PATH": socket_path, "LOG_PATH": str(directory / "log"),
                     "PID_PATH": str(directory / "pid"), "SKYLINE_TMP_DIR": str(directory / "tmp"),
                     "GRAPHITE_HOST": "", "HORIZON_IP": "127.0.0.1", "WORKER_PROCESSES": args.workers, **ports}
        settings_file = directory / "settings.py"
        settings_file.write_text((REPO / "settings.py").read_text() + "\n"
                                 + "".join(f"{k} = {v!r}\n" for k, v in overrides.items()))
        log = directory / "log" / "horizon.log"
        horizon = subprocess.Popen([sys.executable, "-m", "skyline_analyzer", "horizon"], cwd=REPO,
                                   env={**os.environ, "SKYLINE_SETTINGS": str(settings_file)})
        try:
            deadline = time.monotonic() + 60
            while not (log.exists() and log.read_text().count("listener serving") == 3):
                if horizon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"horizon did not start:\n{log.read_text() if log.exists() else ''}")
                time.sleep(0.1)
            setting = {"pickle": "PICKLE_PORT", "udp": "UDP_PORT", "plaintext": "PLAINTEXT_PORT"}[protocol]
            sent = multiprocessing.Value("q", 0)
            kernel_before = udp_rcvbuf_errors()
            started = time.monotonic()
            sender = multiprocessing.Process(target=send, args=(protocol, ("127.0.0.1", ports[setting]), args.rate,
                                                                args.duration, args.metrics, sent))
            sender.start()
            sender.join()
            sending = time.monotonic() - started
            # Let the listeners' last chunks flush and the workers catch up before asking Horizon to stop.
            time.sleep(1.5)
        finally:
            horizon.send_signal(signal.SIGTERM)
            horizon.wait(timeout=120)
        counters = horizon_counters(log)
        return {
            "sent": sent.value,
            "offered_rate": sent.value / sending,
            "received": counters.get(f"listen.{protocol}_datapoints_received", 0),
            "dropped": counters.get(f"listen.{protocol}_chunks_dropped", 0),
            "rejected": counters.get(f"listen.{protocol}_frames_rejected", 0),
            "written": counters.get("worker.datapoints_written", 0),
            "in_redis": redis_datapoints(socket_path),
            "written_rate": counters.get("worker.datapoints_written", 0) / sending,
            "kernel_udp_drops": udp_rcvbuf_errors() - kernel_before if protocol == "udp" else 0,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50_000, help="datapoints a second to offer (0: unthrottled)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to send for (default 60)")
    parser.add_argument("--metrics", type=int, default=5000, help="distinct metric names (default 5000)")
    parser.add_argument("--workers", type=int, default=2, help="WORKER_PROCESSES (default 2)")
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    args = parser.parse_args()
    print(f"offering {'as many as possible' if not args.rate else f'{args.rate:,.0f}'} datapoints/s for "
          f"{args.duration:g} s over {args.metrics} metrics, {args.workers} workers, {os.cpu_count()} CPUs")
    print(f"{'protocol':>9} {'sent':>10} {'offered/s':>10} {'received':>10} {'dropped':>8} {'rejected':>8} "
          f"{'written':>10} {'in Redis':>10} {'written/s':>10} {'kernel UDP drops':>16}")
    for protocol in args.protocols:
        with tempfile.TemporaryDirectory(prefix=f"ingest-{protocol}-") as tmp:
            r = run_protocol(protocol, args, Path(tmp))
        print(f"{protocol:>9} {r['sent']:>10,} {r['offered_rate']:>10,.0f} {r['received']:>10,.0f} "
              f"{r['dropped']:>8,.0f} {r['rejected']:>8,.0f} {r['written']:>10,.0f} {r['in_redis']:>10,} "
              f"{r['written_rate']:>10,.0f} {r['kernel_udp_drops']:>16,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
