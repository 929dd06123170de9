"""Loopback ports and HTTP readiness polling shared by every test server."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from types import TracebackType

__all__ = ["LOOPBACK", "RefusedPort", "free_port", "http_get", "wait_http"]

LOOPBACK = "127.0.0.1"
_POLL_SECONDS = 0.05


def free_port() -> int:
    """Return a loopback port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class RefusedPort:
    """Holds a loopback port bound but not listening, so connections to it are refused.

    Keeping the socket bound (instead of closing it) stops anything else from taking the
    port while a test relies on "connection refused".
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port: int = int(self._sock.getsockname()[1])

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RefusedPort:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL and return (status, body) for any status, including 4xx/5xx."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def wait_http(
    url: str,
    timeout: float = 30.0,
    *,
    alive: Callable[[], bool] | None = None,
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll ``url`` until it answers 2xx/3xx.

    ``alive`` lets a caller stop waiting as soon as the server process has died, and
    ``describe`` adds context (e.g. the server's log) to the error raised on failure.
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        try:
            status, _ = http_get(url, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            if 200 <= status < 400:
                return
            last_error = f"HTTP {status}"
        except OSError as err:
            last_error = repr(err)
        if alive is not None and not alive():
            raise RuntimeError(f"server died before {url} answered ({last_error})\n{_extra(describe)}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s ({last_error})\n{_extra(describe)}")
        time.sleep(_POLL_SECONDS)


def _extra(describe: Callable[[], str] | None) -> str:
    return describe() if describe is not None else ""
