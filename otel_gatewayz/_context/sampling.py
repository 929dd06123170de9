"""One parent-based ratio decision that OpenTelemetry and Sentry both follow.

Sentry transactions are built from sampled OTel spans, so the two can never disagree. A
caller's decision is followed, except a Sentry caller that deferred it (no flag in
``sentry-trace``): then our ratio decides, keeping the caller's trace id, on the caller's
``sample_rand`` when its baggage carries one (Sentry's rule: sampled when ``sample_rand <
rate``), else on the trace id as for a trace that starts here.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .baggage import incoming_dsc
from .propagation import DEFERRED_KEY, DEFERRED_VALUE

# Why a trace was kept (``GATEWAYZ_KEEP_TRACES``), on its local root; partial: what its bounds lost.
KEPT_ATTR = "gatewayz.sampling.kept"
PARTIAL_ATTR = "gatewayz.sampling.partial"
HEAD, ERROR, SLOW = "head", "error", "slow"


def head_sampled(root: ReadableSpan) -> bool:
    """The head decision for a finished local root, whatever kept it (its sampled flag may be set for export)."""
    kept = (root.attributes or {}).get(KEPT_ATTR)
    if kept is not None:
        return kept == HEAD
    return root.context is not None and bool(root.context.trace_flags.sampled)


class GatewayzSampler(Sampler):
    """Parent-based ratio sampling that honours deferred Sentry decisions."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._ratio = TraceIdRatioBased(rate)
        self._parent_based = ParentBased(self._ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid and parent.is_remote and parent.trace_state.get(DEFERRED_KEY) == DEFERRED_VALUE:
            state = parent.trace_state.delete(DEFERRED_KEY)
            dsc = incoming_dsc(parent_context)
            rand = dsc.sample_rand() if dsc is not None and dsc.trace_id == trace.format_trace_id(trace_id) else None
            if rand is not None:
                decision = Decision.RECORD_AND_SAMPLE if rand < self._rate else Decision.DROP
                return SamplingResult(decision, None, state)
            result = self._ratio.should_sample(parent_context, trace_id, name, kind, attributes, links)
            return SamplingResult(result.decision, result.attributes, state)
        return self._parent_based.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return f"GatewayzSampler{{{self._ratio.get_description()}}}"


class RecordingSampler(Sampler):
    """The head decision, but what it drops is still recorded (not sampled), for the decision at the root's end.

    ``GATEWAYZ_KEEP_TRACES``: every request's spans are recorded so that an errored or slow
    request can keep its trace; the sampled flag, ``tracestate`` and the DSC stay the head
    decision's, so propagation and extrapolation see exactly what pure head sampling gives.
    A caller's ``sampled=0`` is recorded too: its errors keep our part of its trace.
    """

    def __init__(self, head: Sampler) -> None:
        self._head = head

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self._head.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:  # a dropping result carries no attributes: keep the span's own
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordingSampler{{{self._head.get_description()}}}"
