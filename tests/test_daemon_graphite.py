"""The carbon plaintext sender against a real TCP listener on loopback."""

from __future__ import annotations

import socket
import threading

from skyline_analyzer import graphite
from tests.support import free_port


class PlaintextListener:
    """A loopback TCP server that records every byte each accepted connection sends."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)
        self.connections: list[bytes] = []
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                # Stop only once an accept finds the backlog empty: a sender that already finished
                # may still be waiting there to be accepted.
                if self.closing.is_set():
                    return
                continue
            with conn:
                conn.settimeout(5)
                chunks = []
                while data := conn.recv(65536):
                    chunks.append(data)
                self.connections.append(b"".join(chunks))

    def close(self) -> None:
        self.closing.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_a_batch_goes_over_one_connection_in_plaintext_format(load_settings):
    listener = PlaintextListener()
    try:
        settings = load_settings(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=listener.port)
        batch = graphite.MetricBatch(settings.graphite_namespace("analyzer"))
        batch.add("run_time", "1.25")
        batch.add("total_metrics", 7)
        assert batch.flush(settings, timestamp=1700000000.9)
        assert batch.metrics == []
    finally:
        listener.close()
    assert listener.connections == [
        b"skyline.analyzer.YOUR_HOSTNAME.run_time 1.25 1700000000\n"
        b"skyline.analyzer.YOUR_HOSTNAME.total_metrics 7 1700000000\n"
    ]


def test_carbon_not_listening_costs_a_log_line(load_settings, caplog):
    settings = load_settings(GRAPHITE_HOST="127.0.0.1", CARBON_PORT=free_port())
    assert graphite.send_metrics(settings, [("a.b", 1)], timeout=2) is False
    assert any("cannot send 1 metrics to Graphite" in r.getMessage() for r in caplog.records)


def test_empty_graphite_host_disables_sending(load_settings):
    settings = load_settings(GRAPHITE_HOST="")
    assert not graphite.enabled(settings)
    assert graphite.send_metrics(settings, [("a.b", 1)]) is False
