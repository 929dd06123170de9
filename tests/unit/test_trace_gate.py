"""The trace gate in process: a real tracer provider, the recording sampler, export behind the gate.

Each test builds its own provider (never the global one): the sampler records what the head
drops, the gate holds it until the local root ends, and a real ``SimpleSpanProcessor`` (which,
like the batch processor, exports only sampled spans) stands for the OTLP export.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

from otel_gatewayz._context.propagation import allow_next_injection, build_propagator
from otel_gatewayz._context.sampling import KEPT_ATTR, PARTIAL_ATTR, GatewayzSampler, RecordingSampler, head_sampled
from otel_gatewayz._errors.storm import TRACE_BUDGET_ATTR
from otel_gatewayz._export.keep import KeepPolicy
from otel_gatewayz._export.recording import record_exceptions_cheaply
from otel_gatewayz._export.tail import (
    BYTES,
    SPANS_PER_TRACE,
    TRACES_IN_FLIGHT,
    TraceGate,
    gated_factory,
)
from otel_gatewayz._metrics.drops import DropCounter


class _Counter:
    def __init__(self) -> None:
        self.added: list[tuple[int, dict[str, str]]] = []

    def add(self, amount: int, attributes: dict[str, str]) -> None:
        self.added.append((amount, attributes))


class _Sender(SpanProcessor):
    """Stands for the Sentry traces processor: records starts (with the parent they name) and ends."""

    def __init__(self) -> None:
        self.started: list[tuple[int, int | None]] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = trace.get_current_span(parent_context).get_span_context()
        self.started.append((span.context.span_id, parent.span_id if parent.is_valid else None))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class Setup:
    def __init__(self, rate: float = 0.0, head: Sampler | None = None, **gate_args: Any) -> None:
        self.counter = _Counter()
        self.sender = _Sender()
        self.gate = TraceGate(
            KeepPolicy(gate_args.pop("slower_than", None), ((500, 599),)),
            DropCounter(self.counter),  # type: ignore[arg-type]
            [self.sender],
            **gate_args,
        )
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=RecordingSampler(head or GatewayzSampler(rate)))
        self.provider.add_span_processor(self.gate)
        export = gated_factory(self.gate, SimpleSpanProcessor)
        self.provider.add_span_processor(export(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def request(self, *, fail: bool = False, status: int = 200, children: int = 1, context: Any = None) -> int:
        with self.tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER, context=context) as root:
            root.set_attribute("http.response.status_code", status)
            for _ in range(children):
                with self.tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={"url.full": "u"}):
                    pass
            if fail:
                root.set_status(Status(StatusCode.ERROR, "ProviderAPIError"))
            return root.get_span_context().trace_id

    def exported(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def drops(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for amount, attributes in self.counter.added:
            assert attributes["signal"] == "spans"
            totals[attributes["reason"]] = totals.get(attributes["reason"], 0) + amount
        return totals


@pytest.fixture
def setup() -> Iterator[Setup]:
    built = Setup()
    yield built
    built.provider.shutdown()


def _root(spans: list[ReadableSpan]) -> ReadableSpan:
    [root] = [s for s in spans if s.kind == SpanKind.SERVER]
    return root


def test_a_success_the_head_did_not_sample_is_dropped_and_nothing_stays_held(setup: Setup) -> None:
    for _ in range(20):
        setup.request()
    assert setup.exported() == []
    assert setup.sender.ended == []
    assert setup.gate.held_traces == 0 and setup.gate.held_bytes == 0


def test_a_failed_request_keeps_its_whole_trace_for_every_sender(setup: Setup) -> None:
    trace_id = setup.request(fail=True, children=3)
    spans = setup.exported()
    assert len(spans) == 4 and {s.context.trace_id for s in spans} == {trace_id}
    root = _root(spans)
    assert root.attributes is not None and root.attributes[KEPT_ATTR] == "error"
    assert PARTIAL_ATTR not in root.attributes
    assert not head_sampled(root)  # the Sentry DSC says what the head said: not sampled
    assert root.attributes["http.response.status_code"] == 200  # the span's own attributes kept
    # Attributes given at start survive a head decision of "drop" (the recording sampler keeps them).
    assert all(s.attributes == {"url.full": "u"} for s in spans if s is not root)
    # The Sentry sender saw every start, each parent before its children, then every end.
    assert setup.sender.started[0] == (root.context.span_id, None)
    assert [parent for _, parent in setup.sender.started[1:]] == [root.context.span_id] * 3
    assert [s.context.span_id for s in setup.sender.ended] == [s.context.span_id for s in spans]


def test_a_5xx_answer_keeps_the_trace_even_without_an_error_status(setup: Setup) -> None:
    setup.request(status=503)
    root = _root(setup.exported())
    assert root.attributes is not None and root.attributes[KEPT_ATTR] == "error"


def test_a_4xx_answer_is_not_an_error() -> None:
    built = Setup()
    built.request(status=404)
    assert built.exported() == []


def test_a_head_sampled_trace_passes_live_and_says_head() -> None:
    built = Setup(rate=1.0)
    built.request(children=2)
    spans = built.exported()
    assert len(spans) == 3
    root = _root(spans)
    assert root.attributes is not None and root.attributes[KEPT_ATTR] == "head" and head_sampled(root)
    assert built.gate.held_traces == 0


def test_a_slow_request_keeps_its_trace() -> None:
    built = Setup(slower_than=0.001)
    with built.tracer.start_as_current_span("GET /slow", kind=SpanKind.SERVER, start_time=1) as root:
        root.set_attribute("http.response.status_code", 200)
    [kept] = built.exported()
    assert kept.attributes is not None and kept.attributes[KEPT_ATTR] == "slow"


def test_storm_control_can_refuse_an_errors_trace(setup: Setup) -> None:
    with setup.tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER) as root:
        root.set_status(Status(StatusCode.ERROR))
        root.set_attribute(TRACE_BUDGET_ATTR, False)
    assert setup.exported() == []


def test_a_caller_that_said_sampled_0_still_keeps_our_part_of_its_failed_trace(setup: Setup) -> None:
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    context = trace.set_span_in_context(NonRecordingSpan(remote))
    setup.request(fail=True, context=context)
    spans = setup.exported()
    assert len(spans) == 2 and {s.context.trace_id for s in spans} == {0xABC}
    assert setup.sender.started[0] == (_root(spans).context.span_id, 0xDEF)  # the caller's parent, as it came


def test_a_trace_past_the_spans_bound_is_exported_partial_and_marked() -> None:
    built = Setup(max_spans=2)
    built.request(fail=True, children=5)
    spans = built.exported()
    assert len(spans) == 3  # the root and the 2 children held
    root = _root(spans)
    assert root.attributes is not None and root.attributes[PARTIAL_ATTR] == SPANS_PER_TRACE
    assert built.drops() == {SPANS_PER_TRACE: 3}


def test_a_trace_past_the_bytes_bound_is_exported_partial_and_marked() -> None:
    built = Setup(max_bytes=1000)
    built.request(fail=True, children=5)
    root = _root(built.exported())
    assert root.attributes is not None and root.attributes[PARTIAL_ATTR] == BYTES
    assert built.drops()[BYTES] >= 3
    assert built.gate.held_bytes == 0


def test_a_root_past_the_traces_bound_is_decided_alone(setup: Setup) -> None:
    built = Setup(max_traces=1)
    with built.tracer.start_as_current_span("outer", kind=SpanKind.SERVER, context=Context()):
        built.request(fail=True, context=Context())  # a second request while the first is held
    [root] = built.exported()
    assert root.attributes is not None
    assert root.attributes[KEPT_ATTR] == "error" and root.attributes[PARTIAL_ATTR] == TRACES_IN_FLIGHT
    assert built.drops() == {TRACES_IN_FLIGHT: 1}
    # Dropped traces lose nothing worth counting: their spans were never going to leave.
    built.request()
    assert built.drops() == {TRACES_IN_FLIGHT: 1}


def test_a_span_ending_after_its_root_follows_the_decision(setup: Setup) -> None:
    for fail in (True, False):
        with setup.tracer.start_as_current_span("GET /stream", kind=SpanKind.SERVER) as root:
            late = setup.tracer.start_span("stream body")
            if fail:
                root.set_status(Status(StatusCode.ERROR))
        late.end()
    names = [s.name for s in setup.exported()]
    assert names == ["GET /stream", "stream body"]  # the failed one's late span only


def test_a_sender_that_raises_does_not_stop_the_others(setup: Setup) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("sender bug")

    setup.gate.attach(Broken())
    setup.request(fail=True)
    assert len(setup.exported()) == 2


def test_exceptions_on_unsampled_spans_are_cheap_and_skipped_once_storm_control_dropped_the_trace() -> None:
    record_exceptions_cheaply()
    record_exceptions_cheaply()  # once only, however often the setup runs
    built = Setup()

    def fail() -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("kept") from exc

    with built.tracer.start_as_current_span("GET /a", kind=SpanKind.SERVER) as dropped:
        dropped.set_attribute(TRACE_BUDGET_ATTR, False)
        dropped.record_exception(RuntimeError("dropped"))
        dropped.set_status(Status(StatusCode.ERROR))
    with built.tracer.start_as_current_span("GET /b", kind=SpanKind.SERVER) as kept:
        try:
            fail()
        except RuntimeError as exc:
            kept.record_exception(exc, escaped=True)
        kept.set_status(Status(StatusCode.ERROR))
    assert [e.name for e in dropped.events] == []  # type: ignore[attr-defined]
    [root] = built.exported()
    [event] = root.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "kept"
    assert event.attributes["exception.escaped"] == "True"
    stack = str(event.attributes["exception.stacktrace"])
    assert stack.index("KeyError: 'inner'") < stack.index("direct cause") < stack.index("RuntimeError: kept")
    assert 'raise RuntimeError("kept") from exc' in stack and "^^^" not in stack


# --- The head decision's sampling data (issue 22 item 2) ------------------------------------
# Nothing in the distro writes an OTel ``th`` (its ratio sampler is the SDK's TraceIdRatioBased,
# which leaves ``tracestate`` alone); a ``th`` comes from a caller, or from a sampler set with
# OTEL_TRACES_SAMPLER. Either way a trace kept for an error must go out, and propagate, with the
# head decision's ``tracestate`` and sampled flag, never as if the head had sampled it: the OTel
# backends extrapolate counts from ``th`` (adjusted count 1/p), which a rule-kept trace must not
# inflate.

PROVIDER_HOST = "provider.internal"
CALLER_STATE = TraceState([("ot", "rv:abcdef01234567"), ("vendor", "v1")])


class _ThresholdSampler(Sampler):
    """A probability sampler as OpenTelemetry's consistent sampling writes it: ``ot=th:`` on sampled traces only."""

    def __init__(self, sampled: bool) -> None:
        self._sampled = sampled

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
        state = parent.trace_state if parent.is_valid else TraceState()
        if parent.is_valid and not parent.is_remote:  # a child follows its local parent
            decision = Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP
            return SamplingResult(decision, attributes, state)
        if self._sampled:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state.update("ot", "th:fd70a3d70a3d7"))
        return SamplingResult(Decision.DROP, None, state.delete("ot") if "ot" in state else state)

    def get_description(self) -> str:
        return "ThresholdSampler"


def _request_with_provider_call(built: Setup, *, fail: bool, context: Any = None) -> dict[str, str]:
    """One request calling an allowed host: the headers the real propagator injects on that call."""
    propagator = build_propagator([r"provider\.internal"])
    carrier: dict[str, str] = {}
    with built.tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, context=context) as root:
        with built.tracer.start_as_current_span("POST", kind=SpanKind.CLIENT):
            allow_next_injection(PROVIDER_HOST)
            propagator.inject(carrier)
        if fail:
            root.set_status(Status(StatusCode.ERROR, "ProviderAPIError"))
    return carrier


def _sampled(traceparent: str) -> bool:
    """The sampled bit of a ``traceparent`` (the SDK may also set W3C's random bit, 0x02)."""
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 0x01)


def test_a_trace_kept_for_its_error_keeps_the_head_decisions_tracestate_and_flag() -> None:
    built = Setup(head=_ThresholdSampler(sampled=False))
    headers = _request_with_provider_call(built, fail=True)
    spans = built.exported()
    assert len(spans) == 2
    assert (_root(spans).attributes or {}).get(KEPT_ATTR) == "error"
    # Exported without a threshold (the head wrote none), not with th:0 or the head's rate.
    assert [dict(s.context.trace_state) for s in spans] == [{}, {}]
    # What went to the provider while the request ran: not sampled, no tracestate.
    assert not _sampled(headers["traceparent"])
    assert "tracestate" not in headers
    assert headers["sentry-trace"].endswith("-0")


def test_a_head_sampled_trace_carries_the_heads_threshold_out_and_downstream() -> None:
    built = Setup(head=_ThresholdSampler(sampled=True))
    headers = _request_with_provider_call(built, fail=True)  # an error changes nothing for a head-sampled trace
    spans = built.exported()
    assert [s.context.trace_state.get("ot") for s in spans] == ["th:fd70a3d70a3d7"] * 2
    assert (_root(spans).attributes or {}).get(KEPT_ATTR) == "head"
    assert _sampled(headers["traceparent"])
    assert headers["tracestate"] == "ot=th:fd70a3d70a3d7"


def test_a_callers_tracestate_passes_unchanged_through_a_trace_kept_for_its_error() -> None:
    built = Setup(rate=0.0)  # the distro's own sampler: parent-based, the caller said sampled=0
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0), trace_state=CALLER_STATE)
    headers = _request_with_provider_call(built, fail=True, context=trace.set_span_in_context(NonRecordingSpan(remote)))
    spans = built.exported()
    assert len(spans) == 2 and {s.context.trace_id for s in spans} == {0xABC}
    assert (_root(spans).attributes or {}).get(KEPT_ATTR) == "error"
    assert [list(s.context.trace_state.items()) for s in spans] == [list(CALLER_STATE.items())] * 2
    assert not _sampled(headers["traceparent"])
    assert headers["tracestate"] == CALLER_STATE.to_header()
