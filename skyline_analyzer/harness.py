"""Helpers for the demo, the tests and the benchmarks: a private Redis, a Horizon child process, feeding them.

Nothing here is part of either daemon. :func:`private_redis` runs a redis-server on a unix socket in a
directory; :func:`seed_redis` writes series straight into it, as Horizon leaves them. :func:`running`
starts ``skyline-analyzer horizon`` with a settings file, waits until its three listeners serve, and stops
it with SIGTERM on exit (it then writes out everything it accepted). :func:`feed` sends whole series through
it over the pickle protocol and waits until Redis holds every datapoint. :func:`ingest` does both for a
private set-up such as the demo's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from skyline_analyzer import codec, config, connections, keys, storage
from skyline_analyzer.codec import decode_pairs
from skyline_analyzer.exceptions import SeriesFormatError
from skyline_analyzer.horizon.senders import send_pickle

#: Seconds allowed for start-up, and for the stop that writes out what was accepted.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def seed_redis(conn: Any, metrics: Mapping[str, Sequence[Sequence[Any]]], namespace: str) -> None:
    """Write each series as Horizon leaves it: ``metrics.<name>`` plus membership of the unique-metrics set."""
    pipe = conn.pipeline(transaction=False)
    for name, pairs in metrics.items():
        full_key = keys.metric(namespace, name)
        pipe.set(full_key, codec.encode(pairs))
        pipe.sadd(keys.unique_metrics(namespace), full_key)
    pipe.execute()


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server listening only on ``<directory>/redis.sock``, no persistence; yields the socket path."""
    binary = shutil.which("redis-server") or "redis-server"
    socket_path = str(directory / "redis.sock")
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700", "--save", "",
         "--appendonly", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(unix_socket_path=socket_path)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {socket_path}") from None
                time.sleep(0.05)
        client.close()
        yield socket_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class PrivateCluster:
    """The redis-server processes of :func:`private_cluster`, by client port."""

    def __init__(self, ports: Sequence[int], password: str | None) -> None:
        self.ports = list(ports)
        self.password = password
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def addresses(self) -> list[str]:
        """``REDIS_CLUSTER_NODES`` for it: ``'127.0.0.1:<port>'`` of every node."""
        return [f"127.0.0.1:{port}" for port in self.ports]

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node (for CLUSTER commands)."""
        return redis.Redis(host="127.0.0.1", port=port, password=self.password)

    def masters(self) -> list[int]:
        """Ports of the nodes that are masters now and serve slots, as a live node sees it."""
        for port, process in self.processes.items():
            if process.poll() is None:
                with self.node(port) as client:
                    return sorted(int(address.split(":")[1].split("@")[0])
                                  for address, node in client.execute_command("CLUSTER NODES").items()
                                  if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"])
        return []

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says ``cluster_state:ok``; RuntimeError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        for port, process in self.processes.items():
            while process.poll() is None:
                try:
                    with self.node(port) as client:
                        if client.execute_command("CLUSTER INFO").get("cluster_state") == "ok":
                            break
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster node on port {port} is not ok after {timeout:g} s")
                time.sleep(0.1)

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.processes[port].kill()
        self.processes[port].wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def private_cluster(directory: Path, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000,
                    password: str | None = None) -> Iterator[PrivateCluster]:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each on free loopback ports.

    Every node runs without persistence in its own directory under ``directory``; ``node_timeout_ms``
    is how long a silent master takes to be failed over (Redis's default is 15000). Every node is stopped
    when the block ends.
    """
    binary = shutil.which("redis-server") or "redis-server"
    count = masters * (1 + replicas)
    # Each node's client port and cluster-bus port, all different (one at a time, the kernel may hand out
    # a port it just handed out, which made two nodes share a port and a directory).
    ports = distinct_free_ports(2 * count)
    cluster = PrivateCluster(ports[:count], password)
    bus_ports = dict(zip(cluster.ports, ports[count:], strict=True))
    auth = ["--requirepass", password, "--masterauth", password] if password else []
    try:
        for port in cluster.ports:
            node_dir = directory / f"node{port}"
            node_dir.mkdir()
            cluster.processes[port] = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus_ports[port]), "--cluster-config-file", str(node_dir / "nodes.conf"),
                 "--cluster-node-timeout", str(node_timeout_ms), "--save", "", "--appendonly", "no",
                 "--dir", str(node_dir), "--logfile", str(node_dir / "redis.log"), *auth],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        for port in cluster.ports:
            _wait_ping(cluster.node(port), cluster.processes[port])
        cli = shutil.which("redis-cli") or "redis-cli"
        created = subprocess.run(
            [cli, *(["-a", password, "--no-auth-warning"] if password else []), "--cluster", "create",
             *cluster.addresses, "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, timeout=START_TIMEOUT, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout.decode(errors='replace')}")
        cluster.wait_ok()
        yield cluster
    finally:
        cluster.stop()


def _wait_ping(client: redis.Redis, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    with client:
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A TCP (or, with ``SOCK_DGRAM``, UDP) port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that were free a moment ago (all bound at once while chosen)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_ports() -> dict[str, int]:
    """``PICKLE_PORT``, ``UDP_PORT`` and ``PLAINTEXT_PORT`` on 127.0.0.1 that were free a moment ago."""
    pickle_port, plaintext_port = distinct_free_ports(2)
    return {"PICKLE_PORT": pickle_port, "UDP_PORT": free_port(socket.SOCK_DGRAM), "PLAINTEXT_PORT": plaintext_port}


def write_settings(path: Path, base: Path | None, overrides: Mapping[str, Any]) -> Path:
    """A settings file: the text of ``base`` (the settings in force when None) with ``overrides`` appended."""
    base = base if base is not None else config.settings_path()
    text = base.read_text() if base is not None else ""
    path.write_text(text + "\n# overrides\n" + "".join(f"{name} = {value!r}\n" for name, value in overrides.items()))
    return path


@contextmanager
def running(settings_file: Path) -> Iterator[config.Settings]:
    """``skyline-analyzer horizon`` running with ``settings_file`` until the block ends; yields its settings.

    Raises RuntimeError with the end of its log when it does not start.
    """
    settings = config.load(settings_file)
    log = Path(settings.LOG_PATH) / "horizon.log"
    offset = log.stat().st_size if log.exists() else 0
    process = subprocess.Popen([sys.executable, "-m", "skyline_analyzer", "horizon"],
                               env={**os.environ, "SKYLINE_SETTINGS": str(settings_file)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while _new_log(log, offset).count("listener serving") < 3:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.poll() is not None else ""
                raise RuntimeError(f"horizon did not start: {output}{_new_log(log, offset)[-2000:]}")
            time.sleep(0.05)
        yield settings
    finally:
        stop(process, STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


def stop(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM ``process`` if it still runs and wait for it; SIGKILL it after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _new_log(log: Path, offset: int) -> str:
    if not log.exists():
        return ""
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def stored_counts(conn: Any, full_keys: Sequence[str]) -> list[int]:
    """Datapoints Redis holds for each key (0 when the key is missing or cannot be decoded)."""
    counts = []
    read, values = storage.fetch(conn, full_keys)
    if len(read) < len(full_keys):
        return [0] * len(full_keys)  # some slot of a cluster is not serving yet: ask again
    for raw in values:
        try:
            counts.append(len(decode_pairs(raw)) if raw else 0)
        except SeriesFormatError:
            counts.append(0)
    return counts


def wait_until_stored(conn: Any, full_keys: Sequence[str], wanted: Sequence[int], timeout: float) -> None:
    """Poll until Redis holds exactly ``wanted`` datapoints per key; RuntimeError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (counts := stored_counts(conn, full_keys)) != list(wanted):
        if time.monotonic() > deadline:
            missing = sum(wanted) - sum(counts)
            raise RuntimeError(f"{missing} of {sum(wanted)} datapoints did not reach Redis in {timeout:g} s")
        time.sleep(0.2)


def feed(settings: config.Settings, metrics: Mapping[str, Sequence[Sequence[Any]]], timeout: float = 120.0) -> int:
    """Send every series to the running Horizon over pickle; return once Redis holds them all.

    Returns the datapoints sent. Raises RuntimeError when they are not all in Redis within ``timeout``.
    """
    datapoints = [(name, (pair[0], pair[1])) for name, pairs in metrics.items() for pair in pairs]
    send_pickle((settings.HORIZON_IP, settings.PICKLE_PORT), datapoints)
    conn = connections.connect(settings)
    try:
        wait_until_stored(conn, [keys.metric(settings.FULL_NAMESPACE, name) for name in metrics],
                          [len(pairs) for pairs in metrics.values()], timeout)
    finally:
        conn.close()
    return len(datapoints)


def ingest(settings: config.Settings, metrics: Mapping[str, Sequence[Sequence[Any]]], directory: Path) -> int:
    """Run a private Horizon on loopback for ``settings``' Redis, feed it ``metrics``, stop it.

    Horizon's log goes to ``directory/horizon.log``. ``MAX_RESOLUTION`` is raised to the Roomba window for
    this Horizon only: a back-fill of a whole day is exactly what it refuses as too old otherwise.
    Returns the datapoints sent.
    """
    overrides = {
        "REDIS_SOCKET_PATH": settings.REDIS_SOCKET_PATH, "REDIS_HOST": settings.REDIS_HOST,
        "REDIS_PORT": settings.REDIS_PORT, "REDIS_PASSWORD": settings.REDIS_PASSWORD,
        "REDIS_CLUSTER_NODES": list(settings.REDIS_CLUSTER_NODES),
        "LOG_PATH": str(directory), "PID_PATH": str(directory), "SKYLINE_TMP_DIR": settings.SKYLINE_TMP_DIR,
        "GRAPHITE_HOST": "", "HORIZON_IP": "127.0.0.1", **free_ports(),
        "MAX_RESOLUTION": settings.FULL_DURATION + settings.ROOMBA_GRACE_TIME,
    }
    with running(write_settings(directory / "horizon_settings.py", None, overrides)) as horizon:
        return feed(horizon, metrics)
