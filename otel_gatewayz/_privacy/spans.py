"""Span scrubbing: a clean copy of a finished span, made once for every exporter that sends it out."""

from __future__ import annotations

import threading
import weakref
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


class CleanSpans:
    """Each finished span scrubbed once, whichever sender asks first (OTLP export, Sentry transactions).

    The clean copy lives as long as the span does (a weak map keyed by the span object), so the
    second sender of a span gets it for a lookup instead of a second scrub.
    """

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber
        self._clean: weakref.WeakKeyDictionary[ReadableSpan, ReadableSpan] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, span: ReadableSpan) -> ReadableSpan:
        with self._lock:
            clean = self._clean.get(span)
        if clean is None:
            clean = scrub_span(span, self._scrubber)
            with self._lock:
                self._clean[span] = clean
        return clean
