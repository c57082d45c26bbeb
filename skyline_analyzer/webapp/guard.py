"""What every request passes before a page or the API sees it: client address, size, credentials.

In order: a client outside ``WEBAPP_ALLOWED_IPS`` gets 403, a query string longer than
``WEBAPP_MAX_QUERY_BYTES`` 414, a missing or wrong basic-auth pair 401 (when ``WEBAPP_AUTH_ENABLED``).
Every response, refusals included, carries the security headers: a Content-Security-Policy that allows
no inline script or style and nothing from another origin, no framing, no sniffing, no referrer.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skyline_analyzer.config import Settings
from skyline_analyzer.excerpt import escape

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
#: Longest Authorization header parsed; a longer one is simply wrong.
MAX_AUTH_HEADER = 1024


class Guard:
    """ASGI middleware applying the checks above to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(n, strict=False) for n in settings.WEBAPP_ALLOWED_IPS]
        self.max_query = settings.WEBAPP_MAX_QUERY_BYTES
        self.credentials = None
        if settings.WEBAPP_AUTH_ENABLED:
            self.credentials = (settings.WEBAPP_AUTH_USER.encode(), settings.WEBAPP_AUTH_USER_PASSWORD.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            status, message, extra = refusal
            await _plain(send, status, message, extra)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)

    def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        client = (scope.get("client") or ("", 0))[0]
        if self.networks and not self.allowed(client):
            log.warning("refused client %s: not in WEBAPP_ALLOWED_IPS", escape(str(client)))
            return 403, "403 Forbidden: this address may not use the web app\n", []
        if len(scope.get("query_string", b"")) > self.max_query:
            return 414, f"414 URI Too Long: the query string is limited to {self.max_query} bytes\n", []
        if self.credentials is not None and not self.authorised(scope):
            return 401, "401 Unauthorized\n", [(b"www-authenticate", b'Basic realm="skyline", charset="UTF-8"')]
        return None

    def allowed(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def authorised(self, scope: Scope) -> bool:
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
        if len(header) > MAX_AUTH_HEADER or header[:6].lower() != b"basic ":
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        expected_user, expected_password = self.credentials
        # Both compared in full, so the time taken says nothing about which was wrong.
        user_ok = hmac.compare_digest(user, expected_user)
        password_ok = hmac.compare_digest(password, expected_password)
        return user_ok and password_ok


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               *extra, *SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
