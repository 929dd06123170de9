"""Shared bits of the recording HTTP servers: threading, body decoding, fault modes."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, TypeVar

from .lifecycle import Lifecycle
from .ports import LOOPBACK

__all__ = [
    "FAULT_MODES",
    "FaultMode",
    "RecordingHandler",
    "RecordingServer",
    "decompress",
    "read_body",
]

FaultMode = Literal["ok", "error_500", "rate_limited", "hang"]
FAULT_MODES: tuple[FaultMode, ...] = ("ok", "error_500", "rate_limited", "hang")
T = TypeVar("T")


def decompress(body: bytes, encoding: str | None) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, br; br needs brotli or brotlicffi)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef,unused-ignore]
        result: bytes = brotli.decompress(body)
        return result
    raise ValueError(f"unsupported Content-Encoding: {encoding}")


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read the request body, by Content-Length or chunked transfer encoding."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class RecordingServer(ThreadingHTTPServer):
    """A threaded loopback HTTP server that keeps what its handlers parse, under one lock.

    Each connection gets its own daemon thread, so a ``hang`` handler (blocked on
    ``release`` until shutdown) holds up neither other connections nor ``close()``.
    """

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__((LOOPBACK, 0), handler)
        self.mode: FaultMode = "ok"
        self.release = threading.Event()
        self.changed = threading.Condition()  # its RLock also guards ``records``
        self.records: list[Any] = []
        self.errors: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def set_mode(self, mode: FaultMode) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {FAULT_MODES}")
        self.mode = mode

    def start_thread(self) -> None:
        # shutdown() waits up to one poll interval: keep it short so teardown is quick.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, release hung handlers and close the socket (idempotent)."""
        self.release.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
            self.server_close()

    def add(self, record: Any) -> None:
        with self.changed:
            self.records.append(record)
            self.changed.notify_all()

    def add_error(self, error: str) -> None:
        with self.changed:
            self.errors.append(error)
            self.changed.notify_all()

    def snapshot(self) -> list[Any]:
        with self.changed:
            return list(self.records)

    def clear(self) -> None:
        with self.changed:
            self.records.clear()
            self.errors.clear()

    def wait_until(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Return ``check()`` once truthy; it is re-run whenever a request is recorded."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = check()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{what}: not seen within {timeout}s "
                        f"({len(self.records)} requests recorded, errors: {self.errors[-3:]})"
                    )
                self.changed.wait(remaining)


class RecordingHandler(BaseHTTPRequestHandler):
    """POST handler: decode, let the subclass parse and record, then answer per fault mode."""

    server: RecordingServer
    rate_limit_headers: ClassVar[dict[str, str]] = {"Retry-After": "60"}

    def parse(self, path: str, body: bytes) -> Any:
        """Turn one decoded body into a record; raise ValueError for a malformed request."""
        raise NotImplementedError

    def ok_response(self, record: Any) -> tuple[int, str, bytes]:
        """(status, content type, body) answered in ``ok`` mode."""
        raise NotImplementedError

    def do_POST(self) -> None:
        mode = self.server.mode
        try:
            body = decompress(read_body(self), self.headers.get("Content-Encoding"))
            record = self.parse(self.path, body)
        except (ValueError, OSError, EOFError, LookupError) as err:
            self.server.add_error(f"{self.path}: {err!r}")
            self._answer(400, "text/plain", f"bad request: {err}\n".encode())
            return
        if record is None:
            self._answer(404, "text/plain", b"not found\n")
            return
        self.server.add(record)
        if mode == "hang":
            self.server.release.wait()
            self.close_connection = True
            return
        if mode == "error_500":
            self._answer(500, "application/json", b'{"detail":"injected error"}')
        elif mode == "rate_limited":
            self._answer(429, "application/json", b'{"detail":"rate limited"}', self.rate_limit_headers)
        else:
            self._answer(*self.ok_response(record))

    def _answer(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its own timeout)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read what was recorded, not an access log."""


class Recorder(Lifecycle):
    """A recording server's lifecycle, port and fault mode; subclasses add what they parse."""

    handler: type[RecordingHandler]

    def __init__(self) -> None:
        self._server = RecordingServer(self.handler)

    def start(self) -> Any:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.close()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def mode(self) -> FaultMode:
        return self._server.mode

    def set_mode(self, mode: FaultMode) -> None:
        """``ok``; ``error_500``; ``rate_limited`` (429 + Retry-After: 60); ``hang`` (never answers)."""
        self._server.set_mode(mode)

    def errors(self) -> list[str]:
        """Requests that could not be decoded or parsed (answered 400)."""
        with self._server.changed:
            return list(self._server.errors)

    def clear(self) -> None:
        self._server.clear()
