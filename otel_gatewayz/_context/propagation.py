"""Trace propagation: W3C ``traceparent``/``baggage`` and Sentry's ``sentry-trace``, chained.

Incoming: a ``traceparent`` wins; a lone ``sentry-trace`` continues the caller's trace with
its sampling decision (a missing flag defers to our ratio). Outgoing: fail closed. Headers
(``traceparent``, ``tracestate``, ``sentry-trace``, ``baggage``) are injected only when an HTTP
client hook has named the destination host just before (a one-shot permit) and that host is
allowed; an unknown destination, or an SDK calling the global propagator itself, gets nothing.
``baggage`` keeps a caller's Sentry DSC frozen (see ``baggage``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextvars import ContextVar
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .baggage import DscSource, SentryBaggagePropagator

SENTRY_TRACE_HEADER = "sentry-trace"
DEFERRED_KEY = "gatewayz"
DEFERRED_VALUE = "deferred"
_SENTRY_TRACE = re.compile(r"^\s*([0-9a-f]{32})-([0-9a-f]{16})(?:-([01]))?\s*$")

# Host of the outgoing request being prepared; set by the HTTP client hook just before the
# instrumentation injects headers, and consumed by that injection.
outgoing_host: ContextVar[str | None] = ContextVar("otel_gatewayz_outgoing_host", default=None)


def allow_next_injection(host: str) -> None:
    """Name the destination of the request about to be injected (called by the client hooks)."""
    outgoing_host.set(host)


class SentryTracePropagator(TextMapPropagator):
    """Reads and writes Sentry's ``sentry-trace`` header as an OpenTelemetry span context."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        context = get_current() if context is None else context
        values = getter.get(carrier, SENTRY_TRACE_HEADER)
        match = _SENTRY_TRACE.match(values[0]) if values else None
        if match is None:
            return context
        trace_id, span_id, sampled = match.groups()
        if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
            return context
        state = TraceState([(DEFERRED_KEY, DEFERRED_VALUE)]) if sampled is None else TraceState()
        span_context = SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled == "1" else TraceFlags.DEFAULT),
            trace_state=state,
        )
        return trace.set_span_in_context(NonRecordingSpan(span_context), context)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        sampled = "1" if span_context.trace_flags.sampled else "0"
        value = f"{trace.format_trace_id(span_context.trace_id)}-{trace.format_span_id(span_context.span_id)}-{sampled}"
        setter.set(carrier, SENTRY_TRACE_HEADER, value)

    @property
    def fields(self) -> set[str]:
        return {SENTRY_TRACE_HEADER}


class TargetGatedPropagator(TextMapPropagator):
    """Extracts everything; injects only when the outgoing host is known and allowed."""

    def __init__(self, inner: TextMapPropagator, targets: Iterable[str]) -> None:
        self._inner = inner
        patterns = tuple(targets)
        self._allowed = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None

    def allows(self, host: str) -> bool:
        """Whether ``host`` may receive our trace headers."""
        return self._allowed is not None and self._allowed.fullmatch(host) is not None

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return self._inner.extract(carrier, context, getter)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        host = outgoing_host.get()
        if host is None:
            return
        outgoing_host.set(None)  # one request, one permit: a later injection must name its own host
        if self.allows(host):
            self._inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._inner.fields


def build_propagator(targets: Iterable[str], dsc: DscSource | None = None) -> TargetGatedPropagator:
    """Sentry first so that a ``traceparent``, extracted after it, wins when both are sent."""
    inner = CompositePropagator(
        [SentryTracePropagator(), TraceContextTextMapPropagator(), SentryBaggagePropagator(dsc)]
    )
    return TargetGatedPropagator(inner, targets)


class NoPropagation(TextMapPropagator):
    """``OTEL_PROPAGATORS=none``: continue nothing, send nothing.

    Not an empty ``CompositePropagator``: its ``extract`` returns ``None`` for a ``None`` context,
    which the ASGI instrumentation then attaches as the current context, breaking the request.
    """

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return get_current() if context is None else context

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set()


def named_propagator(
    names: Iterable[str], targets: Iterable[str], dsc: DscSource | None = None
) -> TargetGatedPropagator:
    """``OTEL_PROPAGATORS``'s list (names validated by the settings), still behind the host gate.

    ``baggage`` is ours, so that a caller's Sentry sampling context stays frozen whatever the list.
    """
    loaded = [
        SentryBaggagePropagator(dsc)
        if name == "baggage"
        else next(iter(entry_points(group="opentelemetry_propagator", name=name))).load()()
        for name in names
    ]
    return TargetGatedPropagator(CompositePropagator(loaded) if loaded else NoPropagation(), targets)
