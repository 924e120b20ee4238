"""One short request, no retries: is a server there? Used before downloads and by the preflight.

huggingface_hub retries a refused connection five times with backoff (~23 s per file); one
probe with a short timeout tells an offline machine in seconds instead.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

TIMEOUT_S = 3.0


def fetch(url: str, timeout: float = TIMEOUT_S, headers: dict[str, str] | None = None,
          method: str = "GET") -> tuple[int, bytes]:
    """(HTTP status, body) of one request; an HTTP error status is an answer, not an exception.
    Raises OSError (URLError, timeouts, refused connections) when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def unreachable(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """Why nothing answers at `url` (e.g. "connection refused"), or None when a server replied at all."""
    try:
        fetch(url, timeout, method="HEAD")
    except OSError as err:
        return str(getattr(err, "reason", err))
    return None


def get_json(url: str, timeout: float = TIMEOUT_S, headers: dict[str, str] | None = None) -> tuple[int, object]:
    """(status, parsed JSON or None when the body is not JSON)."""
    status, body = fetch(url, timeout, headers)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None
