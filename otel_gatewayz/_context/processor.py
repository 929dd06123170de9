"""The span processor that copies the request's user and request attributes onto its later spans.

It also notes which of the request's spans are GenAI operations (spans of the official GenAI
instrumentations), so the HTTP client hooks leave the SDK call's metrics to them.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .state import current_state

GENAI_SCOPE_PREFIX = "opentelemetry.instrumentation.genai"


def is_instrumentation_span(span: ReadableSpan) -> bool:
    """A span of an official GenAI instrumentation: its call's ``gen_ai.client.*`` metrics are recorded by it."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name.startswith((GENAI_SCOPE_PREFIX, "opentelemetry.instrumentation.openai"))


def is_genai_span(span: ReadableSpan) -> bool:
    """A GenAI operation span: an official instrumentation's, or one carrying ``gen_ai.operation.name``
    (anthropic 2.x makes its own, without metrics)."""
    return is_instrumentation_span(span) or bool(span.attributes and "gen_ai.operation.name" in span.attributes)


class ContextSpanProcessor(SpanProcessor):
    """Copies the request's user and request attributes onto every span started after them."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid or parent.is_remote:
            return
        state = current_state()
        if state is None:
            return
        if state.span_attributes:
            span.set_attributes(state.span_attributes)
        if is_genai_span(span):
            state.genai_span_started(span)

    def on_end(self, span: ReadableSpan) -> None:
        state = current_state()
        context = span.get_span_context()
        if state is not None and state.genai_spans and context is not None:
            state.genai_span_ended(context.span_id)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
