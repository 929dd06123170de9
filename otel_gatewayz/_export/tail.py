"""The trace gate: a request's spans held until its local root ends, then kept or dropped as one trace.

The sampler records every span (:class:`~otel_gatewayz._context.sampling.RecordingSampler`);
this gate sits in front of every sender of traces (the OTLP export processors and the Sentry
traces processor), so they all see the same kept traces. A head-sampled trace passes through
live, as without the gate (its root gets ``gatewayz.sampling.kept=head`` when it starts). A
trace the head did not sample is held, per local root, until that root ends; then
:class:`~otel_gatewayz._export.keep.KeepPolicy` keeps it (error, slow) or drops it. A kept
trace is handed to the senders as finished spans with the sampled flag set (the batch
processors export only sampled spans; OTLP does not carry the flag, and ``tracestate`` is
left as the head wrote it) and its root says why it was kept.

Bounds: spans held per trace, traces held at once, and bytes held (an estimate). What a kept
trace lost to them is counted in ``gatewayz_telemetry_dropped_total{signal="spans"}`` by
reason, and its root is marked ``gatewayz.sampling.partial=<reasons>``. Holding costs the
request path a dictionary insert per span; deciding a dropped trace costs a pop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from .._context.sampling import HEAD, KEPT_ATTR, PARTIAL_ATTR
from .._metrics.drops import DropCounter
from .._safety.log import contained
from .keep import KeepPolicy

__all__ = ["TraceGate", "gated_factory", "trace_gate"]

SIGNAL = "spans"
MAX_SPANS_PER_TRACE = 1000
MAX_TRACES = 10_000
MAX_BYTES = 64 * 1024 * 1024
# Decisions remembered for spans that end after their root (a streamed body, a background task).
DECIDED_MEMORY = 4096
_SPAN_BYTES = 400  # a span object with no attributes, roughly
_VALUE_BYTES = 16
SPANS_PER_TRACE, TRACES_IN_FLIGHT, BYTES = "tail_spans_per_trace", "tail_traces_in_flight", "tail_bytes"


def span_bytes(span: ReadableSpan) -> int:
    """A cheap estimate of what holding ``span`` costs: a base, plus its string values' lengths."""
    size = _SPAN_BYTES
    for value in (span.attributes or {}).values():
        size += len(value) if isinstance(value, str) else _VALUE_BYTES
    for event in span.events:
        size += _SPAN_BYTES // 4
        for value in (event.attributes or {}).values():
            size += len(value) if isinstance(value, str) else _VALUE_BYTES
    return size


def exportable(span: ReadableSpan, extra: dict[str, str] | None = None) -> ReadableSpan:
    """A copy of a finished span with the sampled flag set (and ``extra`` attributes), for the senders."""
    context = span.context
    flagged = SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        TraceFlags(context.trace_flags | TraceFlags.SAMPLED),
        context.trace_state,
    )
    attributes = dict(span.attributes or {})
    if extra:
        attributes.update(extra)
    return ReadableSpan(
        name=span.name,
        context=flagged,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _Held:
    """One local root's trace while it runs: its finished spans and what the bounds lost."""

    __slots__ = ("bytes", "lost", "parent_context", "spans")

    def __init__(self, parent_context: Context | None) -> None:
        self.parent_context = parent_context
        self.spans: list[ReadableSpan] = []
        self.bytes = 0
        self.lost: dict[str, int] = {}


class _Attached(SpanProcessor):
    """An export processor the SDK owns: its spans come from the gate, its flush and shutdown stay its own."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class TraceGate(SpanProcessor):
    """Holds each not-head-sampled local root's spans and hands kept traces to its senders."""

    def __init__(
        self,
        policy: KeepPolicy,
        drops: DropCounter,
        senders: Sequence[SpanProcessor] = (),
        *,
        max_spans: int = MAX_SPANS_PER_TRACE,
        max_traces: int = MAX_TRACES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._policy = policy
        self._drops = drops
        self._owned = list(senders)  # shut down and flushed by the gate
        self._senders: list[SpanProcessor] = list(senders)
        self._max_spans = max_spans
        self._max_traces = max_traces
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}  # local root span id -> its trace
        self._root_of: dict[int, int] = {}  # span id -> its local root's span id (held traces only)
        self._decided: OrderedDict[int, str | None] = OrderedDict()
        self._bytes = 0

    def attach(self, processor: SpanProcessor) -> SpanProcessor:
        """Put ``processor`` behind the gate; the SDK keeps the returned one for flush and shutdown."""
        with self._lock:
            self._senders = [*self._senders, processor]
        return _Attached(processor)

    @property
    def held_traces(self) -> int:
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        if span.context.trace_flags.sampled:
            if parent is None or parent.is_remote:
                span.set_attribute(KEPT_ATTR, HEAD)
            for sender in self._senders:
                with contained("trace gate: sender on_start"):
                    sender.on_start(span, parent_context)
            return
        span_id = span.context.span_id
        with self._lock:
            if parent is None or parent.is_remote:
                if len(self._held) < self._max_traces:
                    self._held[span_id] = _Held(parent_context)
                    self._root_of[span_id] = span_id
                return  # past the bound: decided alone at its end (see on_end)
            root = self._root_of.get(parent.span_id)
            if root is not None:
                self._root_of[span_id] = root

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        if context.trace_flags.sampled:
            self._send([span])
            return
        span_id = context.span_id
        with self._lock:
            root = self._root_of.pop(span_id, None)
            held = self._held.get(root) if root is not None else None
            if held is not None and root != span_id:
                self._hold(held, span)
                return
            if held is not None and root is not None:
                del self._held[root]
                self._bytes -= held.bytes
            late_kept = root is not None and held is None and self._decided.get(root) is not None
        if held is not None and root is not None:
            reason = self._policy.reason(span)
            self._remember(root, reason)
            if reason is not None:
                self._release(held, span, reason)
        elif late_kept:  # ended after its root, whose trace was kept
            self._send([exportable(span)])
        elif root is None and (span.parent is None or span.parent.is_remote):
            self._decide_unheld(span)

    def _hold(self, held: _Held, span: ReadableSpan) -> None:
        """Called with the lock held."""
        if len(held.spans) >= self._max_spans:
            held.lost[SPANS_PER_TRACE] = held.lost.get(SPANS_PER_TRACE, 0) + 1
            return
        size = span_bytes(span)
        if self._bytes + size > self._max_bytes:
            held.lost[BYTES] = held.lost.get(BYTES, 0) + 1
            return
        held.spans.append(span)
        held.bytes += size
        self._bytes += size

    def _remember(self, root: int, reason: str | None) -> None:
        with self._lock:
            self._decided[root] = reason
            if len(self._decided) > DECIDED_MEMORY:
                self._decided.popitem(last=False)

    def _decide_unheld(self, root: ReadableSpan) -> None:
        """A root the traces bound left unheld: kept alone (marked partial), its children counted as lost."""
        reason = self._policy.reason(root)
        if reason is None:
            return
        self._drops.count(SIGNAL, TRACES_IN_FLIGHT, what="a kept trace lost its spans (too many traces held)")
        self._send([exportable(root, {KEPT_ATTR: reason, PARTIAL_ATTR: TRACES_IN_FLIGHT})])

    def _release(self, held: _Held, root: ReadableSpan, reason: str) -> None:
        """Hand a kept trace to the senders: starts replayed parent first, ends in the order they came."""
        extra = {KEPT_ATTR: reason}
        if held.lost:
            extra[PARTIAL_ATTR] = ",".join(sorted(held.lost))
            for lost_reason, count in held.lost.items():
                self._drops.count(SIGNAL, lost_reason, count, what="a kept trace lost spans to its bounds")
        children = [exportable(span) for span in held.spans]
        marked_root = exportable(root, extra)
        for child, parent_context in self._starts(marked_root, held.parent_context, children):
            for sender in self._senders:
                with contained("trace gate: sender on_start"):
                    sender.on_start(cast(Span, child), parent_context)  # senders read only its context
        self._send([*children, marked_root])

    @staticmethod
    def _starts(
        root: ReadableSpan, root_parent: Context | None, children: list[ReadableSpan]
    ) -> Iterable[tuple[ReadableSpan, Context | None]]:
        """Each span with its parent's context, every parent before its children (as they started)."""
        yield root, root_parent
        by_parent: dict[int, list[ReadableSpan]] = {}
        for child in children:
            if child.parent is not None:
                by_parent.setdefault(child.parent.span_id, []).append(child)
        stack = [root]
        while stack:
            parent = stack.pop()
            for child in by_parent.pop(parent.context.span_id, ()):
                yield child, trace.set_span_in_context(NonRecordingSpan(parent.context))
                stack.append(child)

    def _send(self, spans: Sequence[ReadableSpan]) -> None:
        for sender in self._senders:
            for span in spans:
                with contained("trace gate: sender on_end"):
                    sender.on_end(span)

    def shutdown(self) -> None:
        for sender in self._owned:
            with contained("trace gate: sender shutdown"):
                sender.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = True
        for sender in self._owned:
            with contained("trace gate: sender flush"):
                flushed = sender.force_flush(timeout_millis) and flushed
        return flushed


def gated_factory(gate: TraceGate, factory: Callable[..., SpanProcessor]) -> Callable[..., SpanProcessor]:
    """The SDK's ``export_span_processor`` hook with every export processor it builds put behind ``gate``."""

    def build(exporter: SpanExporter, *args: Any, **kwargs: Any) -> SpanProcessor:
        return gate.attach(factory(exporter, *args, **kwargs))

    return build


def trace_gate(
    slower_than: float | None,
    failed_status_codes: tuple[tuple[int, int], ...],
    drops: DropCounter,
    senders: Sequence[SpanProcessor],
) -> TraceGate:
    """The gate for ``GATEWAYZ_KEEP_TRACES``, in front of ``senders`` (and the export processors attached later).

    The install step also calls :func:`.recording.record_exceptions_cheaply` (a class patch) when it is on.
    """
    return TraceGate(KeepPolicy(slower_than, failed_status_codes), drops, senders)
