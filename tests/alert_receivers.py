"""Real loopback receivers for the alert tests: syslog socket, HTTP server, SMTP server, a hanging peer.

Every receiver is a context manager that stops what it started.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

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


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """``(certificate, key)`` for 127.0.0.1, made in ``directory`` by the ``openssl`` command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """What a mail server presents: the certificate and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    #: The TLS version the mail came over (SMTPS or STARTTLS), None over plain text.
    tls: str | None = None
    #: The user name the client authenticated as, None without AUTH.
    login: str | None = None


class _Collect:
    def __init__(self, mails: list[Mail]) -> None:
        self.mails = mails

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        tls = server.transport.get_extra_info("ssl_object")
        message = message_from_bytes(envelope.content, policy=policy.default)
        login = session.auth_data if session.authenticated else None
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message,
                               tls.version() if tls else None, login))
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on a free loopback port collecting every mail (parsed with the modern policy).

    ``ssl_context``: SMTPS, TLS from the first byte. ``tls_context``: STARTTLS offered, and required before
    MAIL when ``require_starttls``. ``users``: AUTH PLAIN/LOGIN against these user names and passwords.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, users: dict[str, str] | None = None) -> None:
        self.ssl_context = ssl_context
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.users = users

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        known = (isinstance(data, LoginPassword) and self.users is not None
                 and self.users.get(data.login.decode()) == data.password.decode())
        # handled=False: aiosmtpd then answers 535 itself (handled=True would leave the client waiting).
        return AuthResult(success=known, handled=False, auth_data=data.login.decode() if known else None)

    def __enter__(self) -> SmtpReceiver:
        self.mails: list[Mail] = []
        smtp_options: dict[str, Any] = {}
        if self.tls_context is not None:
            smtp_options |= {"tls_context": self.tls_context, "require_starttls": self.require_starttls}
        if self.users is not None:
            # aiosmtpd offers AUTH only after its own STARTTLS; a SMTPS connection is encrypted already.
            smtp_options |= {"authenticator": self._authenticate, "auth_require_tls": self.ssl_context is None}
        self.controller = Controller(_Collect(self.mails), hostname="127.0.0.1", port=free_port(),
                                     ssl_context=self.ssl_context, **smtp_options)
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
