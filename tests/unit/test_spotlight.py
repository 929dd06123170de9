"""Spotlight deliveries that fail are counted and logged once: the real sentry-sdk client, real sockets."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
import sentry_sdk

from otel_gatewayz._metrics.drops import DropCounter
from otel_gatewayz._sentry.spotlight import watch_spotlight


class _Counter:
    def __init__(self) -> None:
        self.added: list[tuple[int, dict[str, str]]] = []

    def add(self, amount: int, attributes: dict[str, str]) -> None:
        self.added.append((amount, attributes))


class _Fails(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"ctx.req.query(...).toString is not a function")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def failing_spotlight():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Fails)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stream"
    server.shutdown()


def _send_to(url: str) -> list[tuple[int, dict[str, str]]]:
    counter = _Counter()
    sentry_sdk.init(dsn=None, spotlight=url, default_integrations=False)
    try:
        assert watch_spotlight(DropCounter(counter))  # type: ignore[arg-type]
        sentry_sdk.capture_message("one")
        sentry_sdk.capture_message("two")
    finally:
        sentry_sdk.get_client().close()
    return counter.added


def test_a_viewer_answering_500_is_counted(failing_spotlight):
    assert _send_to(failing_spotlight) == [(1, {"signal": "spotlight", "reason": "http_500"})] * 2


def test_a_refused_viewer_is_counted():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        added = _send_to(f"http://127.0.0.1:{held.getsockname()[1]}/stream")
    assert added and added[0] == (1, {"signal": "spotlight", "reason": "unreachable"})
