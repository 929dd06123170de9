"""A loopback Sentry ingest endpoint that records every envelope the SDK sends.

Bugsink drops transactions, so transaction tests assert on these envelopes. The raw
(decompressed) bodies are kept too, for scanning what left the process for secrets.
Fault modes (``ok``, ``error_500``, ``rate_limited``, ``hang``) switch at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ._http import FaultMode, Recorder, RecordingHandler
from .otlp_recorder import parse_traces, spans_of
from .ports import LOOPBACK

__all__ = ["Envelope", "EnvelopeItem", "OtlpIntake", "SentryRecorder", "parse_envelope", "refused_dsn"]

T = TypeVar("T")
_INGEST_PATH = re.compile(r"^/api/(?P<project>[^/]+)/(?P<kind>envelope|store)/?$")
# Sentry's OTLP trace intake, as sentry-sdk's DSN helper names it.
_OTLP_PATH = re.compile(r"^/api/(?P<project>[^/]+)/integration/otlp/v1/traces/?$")


@dataclass(frozen=True)
class EnvelopeItem:
    """One envelope item: its header line and its payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    """One request to the ingest endpoint (a ``/store/`` body becomes a one-event envelope)."""

    path: str
    headers: dict[str, Any]
    items: tuple[EnvelopeItem, ...]
    raw: bytes  # the decompressed request body
    request_headers: dict[str, str] = field(default_factory=dict)
    answered: FaultMode = "ok"  # the fault mode in force when it arrived

    def of_type(self, item_type: str) -> list[EnvelopeItem]:
        return [item for item in self.items if item.type == item_type]


@dataclass(frozen=True)
class OtlpIntake:
    """One OTLP/HTTP trace export posted to the project's OTLP intake."""

    path: str
    message: Any  # ExportTraceServiceRequest
    raw: bytes
    request_headers: dict[str, str] = field(default_factory=dict)


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\n", pos)
    return (data[pos:], len(data)) if end < 0 else (data[pos:end], end + 1)


def parse_envelope(data: bytes) -> tuple[dict[str, Any], list[EnvelopeItem]]:
    """Parse the envelope format: a header line, then (item header, payload) pairs.

    A payload is ``length`` bytes when the item header gives a length, else one line.
    """
    header_line, pos = _line(data, 0)
    headers: dict[str, Any] = json.loads(header_line) if header_line.strip() else {}
    items: list[EnvelopeItem] = []
    while pos < len(data):
        line, pos = _line(data, pos)
        if not line.strip():
            continue
        item_headers: dict[str, Any] = json.loads(line)
        length = item_headers.get("length")
        if length is None:
            payload, pos = _line(data, pos)
        else:
            payload = data[pos : pos + int(length)]
            if len(payload) != int(length):
                raise ValueError(f"item declares length {length} but only {len(payload)} bytes follow")
            pos += int(length)
            if data[pos : pos + 1] == b"\n":
                pos += 1
        items.append(EnvelopeItem(item_headers, payload))
    return headers, items


class _SentryHandler(RecordingHandler):
    rate_limit_headers: ClassVar[dict[str, str]] = {
        "Retry-After": "60",
        "X-Sentry-Rate-Limits": "60::organization",
    }

    def parse(self, path: str, body: bytes) -> Envelope | OtlpIntake | None:
        if _OTLP_PATH.match(path.split("?", 1)[0]):
            headers = {name.lower(): value for name, value in self.headers.items()}
            return OtlpIntake(path, parse_traces(body), body, headers)
        match = _INGEST_PATH.match(path.split("?", 1)[0])
        if match is None:
            return None
        if match["kind"] == "store":
            json.loads(body)  # malformed JSON is a bad request
            headers: dict[str, Any] = {}
            items = [EnvelopeItem({"type": "event", "length": len(body)}, body)]
        else:
            headers, items = parse_envelope(body)
        return Envelope(
            path=path,
            headers=headers,
            items=tuple(items),
            raw=body,
            request_headers={name.lower(): value for name, value in self.headers.items()},
            answered=self.server.mode,
        )

    def ok_response(self, record: Any) -> tuple[int, str, bytes]:
        if isinstance(record, OtlpIntake):
            return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()
        return 200, "application/json", b"{}"


class SentryRecorder(Recorder):
    """Records envelopes posted to ``dsn``; thread-safe; use as a context manager.

    Fault modes: ``ok`` answers 200 ``{}``; ``rate_limited`` also sends X-Sentry-Rate-Limits
    (60 s, all categories).
    """

    handler = _SentryHandler

    @property
    def dsn(self) -> str:
        return f"http://public@{LOOPBACK}:{self.port}/1"

    def envelopes(self) -> list[Envelope]:
        return [record for record in self._server.snapshot() if isinstance(record, Envelope)]

    def otlp_exports(self) -> list[OtlpIntake]:
        """Trace exports posted to the project's OTLP intake."""
        return [record for record in self._server.snapshot() if isinstance(record, OtlpIntake)]

    def otlp_spans(self) -> list[dict[str, Any]]:
        return spans_of(export.message for export in self.otlp_exports())

    def items(self, item_type: str | None = None) -> list[EnvelopeItem]:
        return [i for e in self.envelopes() for i in e.items if item_type is None or i.type == item_type]

    def events(self) -> list[dict[str, Any]]:
        """Error/message events (item type ``event``), as JSON."""
        return [item.json() for item in self.items("event")]

    def transactions(self) -> list[dict[str, Any]]:
        return [item.json() for item in self.items("transaction")]

    def raw_bodies(self) -> list[bytes]:
        """Every decompressed request body, e.g. to scan for secrets that should be scrubbed."""
        return [record.raw for record in self._server.snapshot()]

    def all_bytes(self) -> bytes:
        return b"\n".join(self.raw_bodies())

    def wait_for(self, predicate: Callable[[SentryRecorder], T | None], timeout: float = 10.0) -> T:
        """Return ``predicate(self)`` once truthy (re-checked on every request received)."""
        return self._server.wait_until(lambda: predicate(self), timeout, "Sentry recorder predicate")

    def wait_for_events(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        return self.wait_for(lambda r: _at_least(r.events(), n), timeout)

    def wait_for_transactions(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        return self.wait_for(lambda r: _at_least(r.transactions(), n), timeout)


def _at_least(found: list[dict[str, Any]], n: int) -> list[dict[str, Any]] | None:
    return found if len(found) >= n else None


def refused_dsn(port: int) -> str:
    """A DSN for a port that refuses connections (hold it with ``ports.RefusedPort``)."""
    return f"http://public@{LOOPBACK}:{port}/1"
