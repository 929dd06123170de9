from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision

from otel_gatewayz._context.propagation import build_propagator, outgoing_host
from otel_gatewayz._context.sampling import GatewayzSampler

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_traceparent_wins_over_sentry_trace():
    propagator = build_propagator([])
    headers = {"traceparent": f"00-{TRACE}-b7ad6b7169203331-01", "sentry-trace": f"{'1' * 32}-{'2' * 16}-1"}
    ctx = propagator.extract(headers)
    assert trace.get_current_span(ctx).get_span_context().trace_id == int(TRACE, 16)


def test_sentry_trace_alone_is_followed_with_its_decision():
    propagator = build_propagator([])
    sampler = GatewayzSampler(1.0)
    for flag, expected in (("1", Decision.RECORD_AND_SAMPLE), ("0", Decision.DROP)):
        ctx = propagator.extract({"sentry-trace": f"{TRACE}-{'2' * 16}-{flag}"})
        assert trace.get_current_span(ctx).get_span_context().trace_id == int(TRACE, 16)
        assert sampler.should_sample(ctx, int(TRACE, 16), "x").decision == expected


def test_deferred_sentry_decision_uses_our_ratio_and_drops_the_marker():
    ctx = build_propagator([]).extract({"sentry-trace": f"{TRACE}-{'2' * 16}"})
    assert GatewayzSampler(0.0).should_sample(ctx, int(TRACE, 16), "x").decision == Decision.DROP
    result = GatewayzSampler(1.0).should_sample(ctx, int(TRACE, 16), "x")
    assert result.decision == Decision.RECORD_AND_SAMPLE
    assert "gatewayz" not in (result.trace_state or {})


def test_headers_are_injected_only_for_allowed_hosts():
    propagator = build_propagator([r"internal\.svc", r".*\.corp\.example"])
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s"):
        for host, expected in (("api.openai.com", False), ("internal.svc", True), ("a.corp.example", True)):
            token = outgoing_host.set(host)
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            outgoing_host.reset(token)
            assert ("traceparent" in carrier) is expected, host
            assert ("sentry-trace" in carrier) is expected, host
