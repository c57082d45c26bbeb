"""Real loopback receivers for the alert tests: syslog socket, HTTP server, SMTP server, a hanging peer.

Every receiver is a context manager that stops what it started.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import free_port


class SyslogReceiver:
    """A unix datagram socket in a short temp dir (socket paths are limited to ~107 bytes)."""

    def __enter__(self) -> SyslogReceiver:
        self.directory = tempfile.mkdtemp(prefix="sklog")
        self.address = str(Path(self.directory) / "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def lines(self, wait: float = 0.3) -> list[str]:
        """Every datagram received so far, waiting up to ``wait`` s for the first one."""
        received = []
        self.sock.settimeout(wait)
        while True:
            try:
                received.append(self.sock.recv(65536).decode())
            except (TimeoutError, BlockingIOError):
                return received
            self.sock.settimeout(0.05)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1 that records POSTs and answers ``status`` + ``reply``."""

    status: int = 200
    reply: bytes = b"ok"
    content_type: str = "text/plain"
    requests: list[Request] = field(default_factory=list)

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def do_GET(self) -> None:
                receiver.requests.append(Request(self.path, dict(self.headers.items()), b""))
                self.send_response(receiver.status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (a stuck receiver)."""

    def __enter__(self) -> HangingServer:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message


class _Collect:
    def __init__(self, mails: list[Mail]) -> None:
        self.mails = mails

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on a free loopback port collecting every mail."""

    def __enter__(self) -> SmtpReceiver:
        self.mails: list[Mail] = []
        self.controller = Controller(_Collect(self.mails), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while len(self.mails) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.mails
