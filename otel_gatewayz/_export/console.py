"""A readable local output: one scrubbed line per finished span and per recorded error, on stderr.

For a local run with no viewer (the demo without Node.js): what a trace store and Sentry would
show, in the terminal. Off by default (``GATEWAYZ_CONSOLE``); every line is scrubbed first.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from .._errors.grouping import message_of
from .._privacy.scrubber import Scrubber
from .._privacy.spans import scrub_span

_SHOWN = (
    ("user.id", "user"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.provider.name", "provider"),
    ("error.type", "error"),
)


class ConsoleOutput:
    """Writes the lines; one lock so that lines from several threads never interleave."""

    def __init__(self, scrubber: Scrubber, stream: TextIO | None = None) -> None:
        self._scrubber = scrubber
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            print(line, file=self._stream or sys.stderr, flush=True)

    def error(self, exc: BaseException, fingerprint: tuple[str, ...], user_impact: str) -> None:
        """The line for a recorded error (with or without a Sentry client)."""
        span_context = trace.get_current_span().get_span_context()
        trace_id = trace.format_trace_id(span_context.trace_id)[:8] if span_context.is_valid else "--------"
        text = message_of(exc)
        message = self._scrubber.scrub_text(text).splitlines()[0] if text else ""
        group = self._scrubber.scrub_text(" / ".join(fingerprint))
        self.write(f"[error] {trace_id} {type(exc).__name__}: {message}  group={group} impact={user_impact}")

    def span(self, span: ReadableSpan) -> None:
        clean = scrub_span(span, self._scrubber)
        attributes = dict(clean.attributes or {})
        duration = ((clean.end_time or 0) - (clean.start_time or 0)) / 1e6
        status = attributes.get("http.response.status_code", clean.status.status_code.name.lower())
        details = " ".join(f"{label}={attributes[key]}" for key, label in _SHOWN if key in attributes)
        kind = clean.kind.name.lower() if clean.kind is not None else "internal"
        trace_id = trace.format_trace_id(clean.context.trace_id)[:8] if clean.context else "--------"
        self.write(f"[span]  {trace_id} {kind:<8} {clean.name} {status} {duration:.1f}ms {details}".rstrip())


class ConsoleSpanProcessor(SpanProcessor):
    """Prints each sampled span when it ends."""

    def __init__(self, output: ConsoleOutput) -> None:
        self._output = output

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._output.span(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
