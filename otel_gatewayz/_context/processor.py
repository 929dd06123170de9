"""The span processor that copies the request's user and request attributes onto its later spans."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .state import current_state


class ContextSpanProcessor(SpanProcessor):
    """Copies the request's user and request attributes onto every span started after them."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid or parent.is_remote:
            return
        state = current_state()
        if state is not None and state.span_attributes:
            span.set_attributes(state.span_attributes)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
