"""Scrub spans just before any exporter sees them (OTLP or other), on the export thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from ._runtime import runtime
from ._scrub import ScrubReport


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` whose attributes, events, links and status text are scrubbed."""
    scrubber = runtime().scrubber
    report = ScrubReport()
    attributes: dict[str, Any] = scrubber.scrub(dict(span.attributes or {}), report)
    events = [
        Event(scrubber.scrub_text(event.name, report, "event"), scrubber.scrub(dict(event.attributes or {}), report),
              event.timestamp)
        for event in span.events
    ]
    links = [Link(link.context, scrubber.scrub(dict(link.attributes or {}), report)) for link in span.links]
    status = span.status
    if status.description:
        status = Status(status.status_code, scrubber.scrub_text(status.description, report, "status"))
    if report.count:
        attributes["gatewayz.scrubbed.count"] = report.count
    return ReadableSpan(
        name=scrubber.scrub_text(span.name, report, "name"),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingSpanExporter(SpanExporter):
    """Wraps an exporter so that nothing unscrubbed reaches it."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([scrub_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def scrubbed_batch_processor(exporter: SpanExporter, *args: Any, **kwargs: Any) -> BatchSpanProcessor:
    """The SDK configurator's ``export_span_processor`` hook."""
    return BatchSpanProcessor(ScrubbingSpanExporter(exporter), *args, **kwargs)
