"""Reading series from one Redis and from a Redis Cluster: client CPU and wall time per way of reading.

The same ``--keys`` values (``--value-bytes`` each: 21,600 is a day of 60 s datapoints in Horizon's format)
are stored in a standalone redis-server on a loopback TCP port, in one on a unix socket (the default
set-up) and in a private Redis Cluster of 3 masters + 3 replicas on loopback. They are then read in chunks
of ``MGET_CHUNK`` plain metric names, as an Analyzer worker reads them:

* ``standalone MGET (tcp)``: one MGET per chunk, the baseline of every ratio;
* ``standalone MGET (unix)``: the same over the unix socket;
* ``standalone fetch (unix)``: :func:`skyline_analyzer.storage.fetch` there, as the worker now calls it
  (the single-Redis path must cost what the plain MGET costs);
* ``cluster mget_nonatomic``: redis-py's cross-slot MGET, one command per slot of the chunk;
* ``cluster slot-grouped``: :func:`skyline_analyzer.storage.fetch`, one pipeline per master holding one
  MGET per slot.

Each way reads every key ``--repeat`` times; the fastest pass is printed (client CPU from
``time.process_time``, wall from ``time.perf_counter``) with its ratio to the baseline. The cluster's nodes
and this client share the machine, so wall time includes the servers' work. Nothing is asserted.

    .venv/bin/python benchmarks/cluster_reads.py [--keys 4000] [--value-bytes 21600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from redis.cluster import RedisCluster

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from skyline_analyzer import storage  # noqa: E402
from skyline_analyzer.analyzer.worker import MGET_CHUNK  # noqa: E402
from skyline_analyzer.cluster import ClusterClient, startup_nodes  # noqa: E402
from skyline_analyzer.harness import free_port, private_cluster, private_redis  # noqa: E402


def standalone_tcp(directory: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process, port


def fill(conn, names: Sequence[str], value: bytes) -> None:
    for lo in range(0, len(names), 1000):
        pipe = conn.pipeline(transaction=False)
        for name in names[lo : lo + 1000]:
            pipe.set(name, value)
        pipe.execute()


def one_pass(read: Callable[[Sequence[str]], object], names: Sequence[str]) -> tuple[float, float]:
    """(client CPU s, wall s) of one pass over ``names`` in chunks."""
    cpu, wall = time.process_time(), time.perf_counter()
    for lo in range(0, len(names), MGET_CHUNK):
        read(names[lo : lo + MGET_CHUNK])
    return time.process_time() - cpu, time.perf_counter() - wall


def timed(ways: dict[str, Callable[[Sequence[str]], object]], names: Sequence[str],
          repeat: int) -> dict[str, tuple[float, float]]:
    """The fastest CPU and the fastest wall of each way; the ways take turns, so noise hits them alike."""
    best = {label: (float("inf"), float("inf")) for label in ways}
    for _ in range(repeat):
        for label, read in ways.items():
            cpu, wall = one_pass(read, names)
            best[label] = (min(best[label][0], cpu), min(best[label][1], wall))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=4000)
    parser.add_argument("--value-bytes", type=int, default=21600)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    names = [f"metrics.servers.host{n:05d}.cpu.user" for n in range(args.keys)]
    value = bytes(range(256)) * (args.value_bytes // 256) + b"x" * (args.value_bytes % 256)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "tcp").mkdir()
        (directory / "unix").mkdir()
        (directory / "cluster").mkdir()
        tcp_process, port = standalone_tcp(directory / "tcp")
        try:
            with private_redis(directory / "unix") as socket_path, \
                    private_cluster(directory / "cluster", node_timeout_ms=5000) as cluster:
                tcp = redis.Redis(port=port)
                unix = redis.Redis(unix_socket_path=socket_path)
                client = ClusterClient(lambda: RedisCluster(startup_nodes=startup_nodes(cluster.addresses)),
                                       "bench")
                for conn in (tcp, unix, client):
                    fill(conn, names, value)
                slots = len({client.client.keyslot(name) for name in names[:MGET_CHUNK]})
                ways = {
                    "standalone MGET (tcp)": tcp.mget,
                    "standalone MGET (unix)": unix.mget,
                    "standalone fetch (unix)": lambda chunk: storage.fetch(unix, chunk),
                    "cluster mget_nonatomic": client.client.mget_nonatomic,
                    "cluster slot-grouped": lambda chunk: storage.fetch(client, chunk),
                }
                assert storage.fetch(client, names[:MGET_CHUNK])[1] == tcp.mget(names[:MGET_CHUNK])
                results = timed(ways, names, args.repeat)
                by_slot = sorted(names, key=client.client.keyslot)
                sorted_results = timed(ways, by_slot, args.repeat)
                sorted_slots = len({client.client.keyslot(name) for name in by_slot[:MGET_CHUNK]})
                for conn in (tcp, unix, client):
                    conn.close()
        finally:
            tcp_process.terminate()
            tcp_process.wait()
    print(f"{args.keys} keys of {args.value_bytes} bytes, chunks of {MGET_CHUNK} names, fastest of {args.repeat} "
          "passes")
    report(f"names in any order (a chunk spans {slots} slots, as a worker's chunk does)", results, args.keys)
    report(f"names sorted by slot (a chunk spans {sorted_slots} slots)", sorted_results, args.keys)


def report(title: str, results: dict[str, tuple[float, float]], count: int) -> None:
    base_cpu, base_wall = results["standalone MGET (tcp)"]
    print(f"\n{title}")
    print(f"{'way':26} {'client CPU s':>12} {'ratio':>6} {'wall s':>8} {'ratio':>6} {'keys/s (wall)':>14}")
    for label, (cpu, wall) in results.items():
        print(f"{label:26} {cpu:12.3f} {cpu / base_cpu:6.2f} {wall:8.3f} {wall / base_wall:6.2f} "
              f"{count / wall:14,.0f}")


if __name__ == "__main__":
    main()
