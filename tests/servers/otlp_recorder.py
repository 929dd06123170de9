"""A loopback OTLP/HTTP (protobuf) receiver that records traces, metrics and logs.

It stands in for a collector when a test wants to see exactly what the OTLP exporters
sent, decoded into plain dicts. Fault modes as in the Sentry recorder (500, 429, hang).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped,unused-ignore]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ._http import FaultMode, Recorder, RecordingHandler
from .ports import LOOPBACK

__all__ = ["OtlpRecorder", "OtlpRequest", "any_value", "attributes", "parse_traces", "spans_of"]

Signal = Literal["traces", "metrics", "logs"]
T = TypeVar("T")
_MESSAGES: dict[str, tuple[Signal, type[Message], type[Message]]] = {
    "/v1/traces": ("traces", ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse),
}


@dataclass(frozen=True)
class OtlpRequest:
    """One export request: the decoded protobuf message and the decompressed body."""

    signal: Signal
    message: Any  # ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest
    raw: bytes
    request_headers: dict[str, str] = field(default_factory=dict)
    answered: FaultMode = "ok"


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the plain Python value it carries."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def _span_dict(span: Span, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        "attributes": attributes(span.attributes),
        "events": [
            {
                "name": e.name,
                "attributes": attributes(e.attributes),
                "time_unix_nano": e.time_unix_nano,
            }
            for e in span.events
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ],
        "status": {
            "code": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
            "message": span.status.message,
        },
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "resource": resource,
        "scope": scope,
    }


def parse_traces(body: bytes) -> Any:
    """An ExportTraceServiceRequest from protobuf bytes; ValueError if it is not one."""
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as err:
        raise ValueError(f"not an ExportTraceServiceRequest: {err}") from err
    return message


def spans_of(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """Every span of these ExportTraceServiceRequests, as plain dicts."""
    return [
        _span_dict(span, attributes(rs.resource.attributes), ss.scope.name)
        for message in messages
        for rs in message.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def _points(metric: Any) -> tuple[str, list[dict[str, Any]]]:
    kind = metric.WhichOneof("data") or ""
    points: list[dict[str, Any]] = []
    for p in getattr(metric, kind).data_points if kind else ():
        point: dict[str, Any] = {"attributes": attributes(p.attributes)}
        if kind in ("gauge", "sum"):
            point["value"] = getattr(p, p.WhichOneof("value")) if p.WhichOneof("value") else None
        elif kind == "histogram":
            point.update(
                count=p.count,
                sum=p.sum,
                bucket_counts=list(p.bucket_counts),
                explicit_bounds=list(p.explicit_bounds),
            )
        elif kind in ("exponential_histogram", "summary"):
            point.update(count=p.count, sum=p.sum)
        points.append(point)
    return kind, points


class _OtlpHandler(RecordingHandler):
    def parse(self, path: str, body: bytes) -> OtlpRequest | None:
        entry = _MESSAGES.get(path.split("?", 1)[0])
        if entry is None:
            return None
        if "json" in (self.headers.get("Content-Type") or ""):
            raise ValueError("only OTLP/HTTP protobuf is supported")
        signal, request_type, _ = entry
        message = request_type()
        try:
            message.ParseFromString(body)
        except DecodeError as err:
            raise ValueError(f"not a {request_type.__name__}: {err}") from err
        return OtlpRequest(
            signal=signal,
            message=message,
            raw=body,
            request_headers={name.lower(): value for name, value in self.headers.items()},
            answered=self.server.mode,
        )

    def ok_response(self, record: Any) -> tuple[int, str, bytes]:
        response_type = _MESSAGES[self.path.split("?", 1)[0]][2]
        return 200, "application/x-protobuf", response_type().SerializeToString()


class OtlpRecorder(Recorder):
    """Records OTLP exports posted under ``endpoint``; thread-safe; a context manager."""

    handler = _OtlpHandler

    @property
    def endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporters add ``/v1/...``)."""
        return f"http://{LOOPBACK}:{self.port}"

    def requests(self, signal: Signal | None = None) -> list[OtlpRequest]:
        return [r for r in self._server.snapshot() if signal is None or r.signal == signal]

    def raw_bodies(self) -> list[bytes]:
        return [request.raw for request in self.requests()]

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, as a plain dict (ids in hex, kind/status as short names)."""
        return spans_of(request.message for request in self.requests("traces"))

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric received (one entry per metric per export), with its data points."""
        found: list[dict[str, Any]] = []
        for request in self.requests("metrics"):
            for rm in request.message.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind, points = _points(metric)
                        found.append(
                            {
                                "name": metric.name,
                                "unit": metric.unit,
                                "type": kind,
                                "points": points,
                                "resource": resource,
                                "scope": sm.scope.name,
                            }
                        )
        return found

    def metric_names(self) -> set[str]:
        return {metric["name"] for metric in self.metrics()}

    def logs(self) -> list[dict[str, Any]]:
        """Every log record received, as a plain dict."""
        return [
            {
                "body": any_value(record.body),
                "severity_text": record.severity_text,
                "severity_number": int(record.severity_number),
                "attributes": attributes(record.attributes),
                "trace_id": record.trace_id.hex() or None,
                "span_id": record.span_id.hex() or None,
                "resource": attributes(rl.resource.attributes),
                "scope": sl.scope.name,
            }
            for request in self.requests("logs")
            for rl in request.message.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]

    def wait_for(self, predicate: Callable[[OtlpRecorder], T | None], timeout: float = 10.0) -> T:
        """Return ``predicate(self)`` once truthy (re-checked on every request received)."""
        return self._server.wait_until(lambda: predicate(self), timeout, "OTLP recorder predicate")

    def wait_for_span(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first span called ``name``, once received."""
        return self.wait_for(lambda r: next((s for s in r.spans() if s["name"] == name), None), timeout)
