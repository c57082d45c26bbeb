"""Horizon as a real process: carbon-relay and plaintext clients in, exact Redis values out, the analysis
flags the seeded anomaly; bad input is rejected, logged and counted (in the log and in a real carbon-cache);
bin/horizon.d drives it as a service; ``seed`` round-trips."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import msgpack
import pytest

from skyline_analyzer import config
from skyline_analyzer.codec import decode, decode_pairs
from skyline_analyzer.detection import engine
from tests.horizon_process import HorizonProcess, horizon_settings
from tests.support import (
    CLI,
    REPO,
    NotifyReceiver,
    Touch,
    alive,
    children,
    kill_process,
    pickle_frame,
    run_cli,
    settings_env,
    wait_for_log,
    wait_until,
)


def send_bad_input(horizon: HorizonProcess, marker: Path) -> None:
    with socket.create_connection(horizon.address("PICKLE_PORT")) as conn:
        conn.sendall(pickle_frame([("evil", (1, 2)), Touch(marker)]))
    with socket.create_connection(horizon.address("PICKLE_PORT")) as conn:
        conn.sendall(pickle_frame([("cut", (1, 2))] * 20)[:50])
    with socket.create_connection(horizon.address("PICKLE_PORT")) as conn:
        conn.sendall(struct.pack("!I", 0xFFFFFFF0) + b"never read")
        conn.settimeout(10)
        assert conn.recv(1) == b""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"\xc1 garbage datagram", horizon.address("UDP_PORT"))
    with socket.create_connection(horizon.address("PLAINTEXT_PORT")) as conn:
        conn.sendall(b"no.value.here 1700000000\n")


def test_relay_and_plaintext_clients_end_to_end(make_settings, redis_conn, carbon, tmp_path) -> None:
    from skyline_analyzer import synthetic

    settings_path = horizon_settings(make_settings, MAX_RESOLUTION=200_000, GRAPHITE_HOST="127.0.0.1",
                                     CARBON_PORT=carbon.line_port)
    horizon = HorizonProcess(settings_path)
    try:
        marker = tmp_path / "reduce-ran"
        send_bad_input(horizon, marker)
        now = int(time.time())
        metrics = synthetic.make_metrics(12, end=now, anomalous=1)  # a day a minute apart; the first spikes
        names = list(metrics)
        by_relay, by_plaintext = names[:8], names[8:]
        relayed = [(name, (ts, value)) for name in by_relay for ts, value in metrics[name]]
        # carbon-relay batches up to 500 datapoints a frame over one long-lived connection.
        with socket.create_connection(horizon.address("PICKLE_PORT")) as relay:
            for start in range(0, len(relayed), 500):
                relay.sendall(pickle_frame(relayed[start:start + 500]))
        lines = "".join(f"{name} {value!r} {ts}\n" for name in by_plaintext for ts, value in metrics[name])
        with socket.create_connection(horizon.address("PLAINTEXT_PORT")) as plain:
            plain.sendall(lines.encode())

        deadline = time.monotonic() + 30
        expected = {f"metrics.{name}": [tuple(pair) for pair in metrics[name]] for name in names}
        while time.monotonic() < deadline:
            stored = dict(zip(expected, redis_conn.mget(list(expected)), strict=True))
            if all(raw and len(decode_pairs(raw)) == 1440 for raw in stored.values()):
                break
            time.sleep(0.1)
        for key, pairs in expected.items():
            got = decode_pairs(stored[key])
            # In the order sent (each metric has one worker), with the sender's int and float types.
            assert got == pairs, key
            assert [type(v) for pair in got for v in pair] == [type(v) for pair in pairs for v in pair]
        assert {m.decode() for m in redis_conn.smembers("metrics.unique_metrics")} == set(expected)
        settings = config.load(settings_path)

        outcomes = engine.analyse([decode(stored[k], k) for k in expected], list(expected), settings, time.time())
        flagged = [o.name for o in outcomes if o.verdict is not None and o.verdict.anomalous]
        assert flagged == [f"metrics.{names[0]}"]
    finally:
        assert horizon.stop() == 0
    assert not marker.exists(), "the __reduce__ payload never ran"

    log = horizon.log.read_text()
    assert "refused STACK_GLOBAL" in log or "refused GLOBAL" in log
    assert "closing" in log and "length prefix" in log
    assert "connection closed inside a frame" in log
    assert "datagram is not one msgpack object" in log
    assert "line does not have 3 fields" in log
    prefix = "skyline.horizon.e2e."
    expected_counts = {
        "listen.pickle_frames_rejected": 3, "listen.udp_frames_rejected": 1, "listen.plaintext_frames_rejected": 1,
        "listen.pickle_datapoints_received": 8 * 1440, "listen.plaintext_datapoints_received": 4 * 1440,
        "worker.datapoints_written": 12 * 1440, "listen.pickle_chunks_dropped": 0,
    }
    for name, count in expected_counts.items():
        # Counts are per report; a periodic report may have come before the final one: add them up.
        def arrived(metric: str = prefix + name, count: int = count) -> bool:
            return sum(carbon.wait_for(metric, timeout=20)) == count

        wait_until(arrived, timeout=20, interval=0.2)
        values = carbon.values(prefix + name)
        assert values and sum(values) == count, name


def test_service_script_and_seed_round_trip(make_settings, redis_conn) -> None:
    settings_path = horizon_settings(make_settings)
    settings = config.load(settings_path)
    env = settings_env(settings_path)

    def service(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO / "bin" / "horizon.d"), command], env=env, capture_output=True, text=True,
                              timeout=120)

    assert service("status").returncode == 3
    started = service("start")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        status = service("status")
        assert status.returncode == 0 and "horizon is running with pid" in status.stdout
        pid = int((Path(settings.PID_PATH) / "horizon.pid").read_text().split()[0])
        assert "horizon" in Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")
        for protocol in ("pickle", "udp"):
            seeded = subprocess.run([*CLI, "seed", "--protocol", protocol, "--metrics", "3",
                                     "--prefix", f"seed.{protocol}", "--timeout", "30"],
                                    env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
            assert seeded.returncode == 0, seeded.stdout + seeded.stderr
            assert "was flagged" in seeded.stdout
    finally:
        stopped = service("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert service("status").returncode == 3
    # 940 datapoints a second apart fit in the default MAX_RESOLUTION of 1000 s.
    assert len(decode_pairs(redis_conn.get("metrics.seed.udp.synthetic.noisy.00000"))) == 940


def test_start_fails_clearly_when_a_port_is_taken(make_settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        settings_path = horizon_settings(make_settings, PLAINTEXT_PORT=taken.getsockname()[1])
        result = run_cli(settings_path, "horizon", timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert "cannot bind the plaintext listener" in result.stderr


def test_placeholder_horizon_ip_is_a_settings_error(make_settings) -> None:
    result = run_cli(make_settings(), "horizon", timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert "HORIZON_IP is still the placeholder" in result.stderr


def test_datagram_sent_before_shutdown_is_written(make_settings, redis_conn) -> None:
    horizon = HorizonProcess(horizon_settings(make_settings, CHUNK_FLUSH_INTERVAL=60.0))
    now = int(time.time())
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(msgpack.packb(("last.words", [now, 1.0])), horizon.address("UDP_PORT"))
        time.sleep(0.5)
        assert redis_conn.get("metrics.last.words") is None, "one datapoint waits in its chunk"
    finally:
        assert horizon.stop() == 0
    assert redis_conn.get("metrics.last.words") == msgpack.packb((now, 1.0)), "stop flushes and drains"


def test_ingest_feeds_a_private_horizon_as_the_demo_does(load_settings, redis_conn, tmp_path) -> None:
    from skyline_analyzer import synthetic
    from skyline_analyzer.harness import ingest

    settings = load_settings()
    metrics = synthetic.make_metrics(3, end=int(time.time()), anomalous=1)
    assert ingest(settings, metrics, tmp_path) == 3 * 1440
    for name, pairs in metrics.items():
        assert decode_pairs(redis_conn.get(f"metrics.{name}")) == [tuple(pair) for pair in pairs]
    assert "horizon :: stopped" in (tmp_path / "horizon.log").read_text()


def test_horizon_only_settings_are_validated(load_settings) -> None:
    from skyline_analyzer.horizon.agent import validate

    settings = load_settings(HORIZON_IP="127.0.0.1", PICKLE_PORT=2030, PLAINTEXT_PORT=2030)
    problems = validate(settings)
    assert any("must differ" in p for p in problems)
    assert validate(load_settings(HORIZON_IP="127.0.0.1")) == []


@pytest.mark.parametrize(("announces", "child"), [("udp listener serving", "listen-udp"),
                                                  ("worker 0 started", "worker-0")])
def test_a_killed_child_starts_a_new_generation_and_stop_still_works(make_settings, redis_conn, announces,
                                                                     child) -> None:
    horizon = HorizonProcess(horizon_settings(make_settings, CHUNK_FLUSH_INTERVAL=0.1))
    try:
        wait_for_log(horizon.log, announces)
        line = next(line for line in horizon.log.read_text().splitlines() if announces in line)
        pid = int(line.split(" :: ")[1])
        assert pid in children(horizon.process.pid), "a child of the Horizon this test started"
        os.kill(pid, signal.SIGKILL)
        wait_for_log(horizon.log, f"{child} (pid {pid}) exited with code -9", timeout=10)
        wait_for_log(horizon.log, "started every listener and worker again", timeout=30)
        wait_for_log(horizon.log, announces, count=2, timeout=10)
        now = int(time.time())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(msgpack.packb(("after.restart", [now, 2.0])), horizon.address("UDP_PORT"))
        wait_until(lambda: redis_conn.get("metrics.after.restart") is not None, timeout=10)
        assert redis_conn.get("metrics.after.restart") == msgpack.packb((now, 2.0))
    finally:
        assert horizon.stop() == 0
    assert horizon.counters()["agent.child_deaths"] == 1, "the death is counted, and reported"


def living(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (neither gone nor a zombie)."""
    return [pid for pid in pids if alive(pid)]


def test_children_exit_when_the_agent_is_killed(make_settings, tmp_path) -> None:
    # No Redis at all: the workers wait for it and read nothing, so the (tiny) queues fill up.
    horizon = HorizonProcess(horizon_settings(make_settings, REDIS_SOCKET_PATH=str(tmp_path / "no-redis.sock"),
                                              MAX_QUEUE_SIZE=2))
    forked = children(horizon.process.pid)
    try:
        assert len(forked) == 5, "two workers and three listeners"
        name = "orphan." + "x" * 200
        with socket.create_connection(horizon.address("PLAINTEXT_PORT")) as conn:
            conn.sendall(b"".join(f"{name}{n % 50} {n} {int(time.time())}\n".encode() for n in range(20_000)))
        wait_for_log(horizon.log, "queue is full", timeout=15)
    finally:
        # Take the agent away without any chance to clean up; a listener must not wait for ever at exit
        # to hand its buffered chunks to workers that are gone.
        horizon.process.kill()
        horizon.process.wait()
    wait_until(lambda: not living(forked), timeout=15, interval=0.1)
    alive = living(forked)
    for pid in alive:  # this test started them: do not leave them behind if the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert alive == [], "every child noticed the agent was gone and exited"


def test_systemd_notify_ready_watchdog_stopping(make_settings, redis_conn, tmp_path) -> None:
    """Under systemd (Type=notify) Horizon says READY once serving, pings the watchdog, says STOPPING."""
    settings_path = horizon_settings(make_settings)
    with NotifyReceiver() as notify:
        env = settings_env(settings_path, **notify.environ(2_000_000))
        process = subprocess.Popen([*CLI, "horizon"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            assert notify.wait_for("WATCHDOG=1", count=2)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert notify.wait_for("STOPPING=1")
            messages = notify.messages()
        finally:
            kill_process(process)
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    unit = (REPO / "etc" / "systemd" / "horizon.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "skyline-analyzer horizon" in unit
