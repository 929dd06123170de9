"""Span scrubbing: a clean copy of a finished span, for every exporter that sends it out."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status

from .scrubber import Scrubber, ScrubReport


def scrub_span(span: ReadableSpan, scrubber: Scrubber) -> ReadableSpan:
    """A copy of ``span`` whose name, attributes, events, links and status text are scrubbed."""
    report = ScrubReport()
    attributes: dict[str, Any] = scrubber.scrub(dict(span.attributes or {}), report)
    events = [
        Event(
            scrubber.scrub_text(event.name, report, "event"),
            scrubber.scrub(dict(event.attributes or {}), report),
            event.timestamp,
        )
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
