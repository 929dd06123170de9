"""Loopback telemetry sinks for the benchmark, run as their own process.

Two HTTP/1.1 (keep-alive) servers: a Sentry ingest endpoint (answers ``{}`` to envelopes) and
an OTLP/HTTP endpoint (answers an empty protobuf response, which is a valid
``Export*ServiceResponse``). Bodies are read and counted, never parsed: the sinks must cost
the gateway no more than a fast collector would, and must not compete with the load client
for a GIL (hence their own process).

Control (on either port): ``GET /_stats`` -> JSON counters; ``POST /_mode/<mode>`` with mode
``ok`` | ``500`` | ``429`` | ``hang``. ``429`` answers ``Retry-After: 60`` and
``X-Sentry-Rate-Limits: 60::organization``; ``hang`` reads the request and never answers
(until the mode changes or the process exits).

Run: ``python bench/sinks.py`` prints one JSON line ``{"sentry": port, "otlp": port}``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "500", "429", "hang")


class Sink(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, kind: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.kind = kind
        self.mode = "ok"
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.by_path: dict[str, int] = {}
        self.answered: dict[str, int] = {}
        self.items: dict[str, int] = {}  # Sentry envelope items by type
        self.last = 0.0

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "kind": self.kind,
                "mode": self.mode,
                "requests": self.requests,
                "bytes": self.bytes,
                "by_path": dict(self.by_path),
                "answered": dict(self.answered),
                "items": dict(self.items),
                "idle_seconds": (time.monotonic() - self.last) if self.last else None,
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Sink
    # One write per response and no Nagle: with keep-alive, a header write followed by a small
    # body write waits for the client's delayed ACK (~40 ms a response), which would make the
    # sink, not the gateway, the bottleneck of every exporter.
    wbufsize = -1

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path == "/_stats":
            self._send(200, json.dumps(self.server.stats()).encode())
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        body = self._body()
        server = self.server
        if self.path.startswith("/_mode/"):
            mode = self.path.rsplit("/", 1)[1]
            if mode not in MODES:
                self._send(400, b'{"error": "unknown mode"}')
                return
            server.mode = mode
            if mode != "hang":
                server.release.set()
                server.release = threading.Event()
            self._send(200, b"{}")
            return
        mode = server.mode
        key = self.path.split("?", 1)[0]
        if server.kind != "sentry":
            counts: dict[str, int] = {}
        elif "/integration/otlp/" in key:  # Sentry's OTLP trace intake: one batch of spans
            counts = {"otlp_intake": 1}
        else:
            counts = _item_counts(body, self.headers.get("Content-Encoding"))
        with server.lock:
            for item_type, count in counts.items():
                server.items[item_type] = server.items.get(item_type, 0) + count
            server.requests += 1
            server.bytes += len(body)
            server.by_path[key] = server.by_path.get(key, 0) + 1
            server.answered[mode] = server.answered.get(mode, 0) + 1
            server.last = time.monotonic()
        if mode == "hang":
            server.release.wait()
            self.close_connection = True
            return
        if mode == "500":
            self._send(500, b'{"detail": "injected error"}')
        elif mode == "429":
            self._send(
                429,
                b'{"detail": "rate limited"}',
                headers={"Retry-After": "60", "X-Sentry-Rate-Limits": "60::organization"},
            )
        elif server.kind == "otlp" or "/integration/otlp/" in key:
            self._send(200, b"", "application/x-protobuf")
        else:
            self._send(200, b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


SPAN_V2 = "application/vnd.sentry.items.span.v2+json"


def _item_counts(body: bytes, encoding: str | None) -> dict[str, int]:
    """Items of a Sentry envelope by type (header line, then item header + payload pairs).

    A span v2 item (``type: span``, sentry-sdk 3's way of sending spans) holds a trace's spans:
    it counts once as ``span`` and its ``item_count`` spans count as ``span_v2_spans``.
    """
    counts: dict[str, int] = {}
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            return {"(brotli)": 1}
        pos = body.find(b"\n") + 1
        while 0 < pos < len(body):
            end = body.find(b"\n", pos)
            end = len(body) if end < 0 else end
            line = body[pos:end].strip()
            pos = end + 1
            if not line:
                continue
            header = json.loads(line)
            item_type = str(header.get("type"))
            counts[item_type] = counts.get(item_type, 0) + 1
            if item_type == "span" and header.get("content_type") == SPAN_V2:
                counts["span_v2_spans"] = counts.get("span_v2_spans", 0) + int(header.get("item_count") or 0)
            length = header.get("length")
            if length is None:
                nxt = body.find(b"\n", pos)
                pos = len(body) if nxt < 0 else nxt + 1
            else:
                pos += int(length) + 1
        return counts
    except (ValueError, OSError, EOFError):
        return {"(unparsed)": 1}


def main() -> None:
    sinks = {"sentry": Sink("sentry"), "otlp": Sink("otlp")}
    for sink in sinks.values():
        threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print(json.dumps({name: sink.server_address[1] for name, sink in sinks.items()}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # exit when the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
