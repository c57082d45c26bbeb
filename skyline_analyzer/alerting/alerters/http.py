"""JSON over HTTP for the network alerters, every request bounded by ALERT_TIMEOUT."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

#: Identifies the alerts to receivers and proxies.
USER_AGENT = "skyline-analyzer alerter"


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold; anything else JSON cannot encode as its text."""
    return value.item() if hasattr(value, "item") else str(value)


def post_json(url: str, payload: Any, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    """POST ``payload`` as JSON and return the response body.

    Raises :class:`urllib.error.HTTPError` for a 4xx/5xx answer, :class:`urllib.error.URLError` when the
    receiver refuses, and :class:`TimeoutError` when it does not answer within ``timeout`` seconds.
    """
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=_plain).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def get_bytes(url: str, timeout: float, limit: int) -> bytes:
    """GET a URL's body within ``timeout`` seconds per socket operation (FIX R4: v1.2.8 had no timeout).

    At most ``limit`` bytes are read: a longer body raises :class:`ValueError`.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(limit + 1)
    if len(body) > limit:
        raise ValueError(f"the answer is longer than {limit} bytes")
    return body
