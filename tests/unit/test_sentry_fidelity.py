"""Issue 12 units: baggage and DSC, one sampling decision, request interface and PII, session aggregates."""

from __future__ import annotations

import json
import secrets
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased
from sentry_sdk.tracing_utils import Baggage

from otel_gatewayz._context.baggage import DscSource, incoming_dsc, parse_baggage, sample_rand_of, serialize_dsc
from otel_gatewayz._context.propagation import allow_next_injection, build_propagator
from otel_gatewayz._context.sampling import GatewayzSampler
from otel_gatewayz._sentry.request import pii_values, redact_values, request_from_scope, strip_pii_span_data
from otel_gatewayz._sentry.sessions import SessionAggregator

TRACE = "0af7651916cd43dd8448eb211c80319c"
DSC = DscSource("pk", "svc@abc", "production", 0.25)


def _inject(ctx: Any = None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    allow_next_injection("provider.example")  # as the HTTP client hook does: injection fails closed
    build_propagator([".*"], DSC).inject(carrier, ctx)
    return carrier


def test_incoming_sentry_entries_go_out_byte_for_byte_and_third_party_entries_pass_through():
    header = f"sentry-trace_id={TRACE},sentry-transaction=POST%20%2Fcheckout,sentry-sampled=true,vendor=a%20b;p=1"
    ctx = build_propagator([], DSC).extract({"sentry-trace": f"{TRACE}-{'2' * 16}-1", "baggage": header})

    assert incoming_dsc(ctx).values == {"trace_id": TRACE, "transaction": "POST /checkout", "sampled": "true"}
    assert otel_baggage.get_baggage("vendor", ctx) == "a b"
    assert _inject(ctx)["baggage"] == header  # no "+", no re-encoding, same order


def test_a_value_the_app_changed_is_percent_encoded_not_plus_encoded():
    ctx = build_propagator([], None).extract({"baggage": "vendor=a%20b"})
    ctx = otel_baggage.set_baggage("vendor", "c d/e", ctx)
    carrier: dict[str, str] = {}
    allow_next_injection("provider.example")
    build_propagator([".*"], None).inject(carrier, ctx)
    assert carrier["baggage"] == "vendor=c%20d%2Fe"


def test_a_trace_started_here_gets_our_dsc_in_sentrys_encoding():
    tracer = TracerProvider(sampler=GatewayzSampler(1.0)).get_tracer("t")
    with tracer.start_as_current_span("root") as span:
        header = _inject()["baggage"]
    values = Baggage.from_incoming_header(header).dynamic_sampling_context()  # how sentry-sdk reads it
    assert values["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert (values["public_key"], values["release"], values["environment"]) == ("pk", "svc@abc", "production")
    assert (values["sample_rate"], values["sampled"]) == ("0.25", "true")
    assert serialize_dsc({"transaction": "POST /a b"}) == "sentry-transaction=POST%20/a%20b"  # as sentry-sdk's quote


def test_sample_rand_below_rate_exactly_when_the_ratio_sampler_samples():
    for rate in (0.01, 0.25, 0.5, 0.999):
        ratio = TraceIdRatioBased(rate)
        for _ in range(500):
            trace_id = int(secrets.token_hex(16), 16)
            sampled = ratio.should_sample(None, trace_id, "x").decision == Decision.RECORD_AND_SAMPLE
            assert (sample_rand_of(trace_id, None, rate) < rate) is sampled


def test_sample_rand_follows_a_callers_decision_that_disagrees_with_our_ratio():
    trace_id = int("f" * 32, 16)  # the ratio says no for any rate < 1
    assert sample_rand_of(trace_id, True, 0.25) < 0.25
    low = int("0" * 31 + "1", 16)
    assert sample_rand_of(low, False, 0.25) >= 0.25


def test_deferred_decision_uses_the_callers_sample_rand():
    propagator = build_propagator([], DSC)
    for rand, expected in (("0.100000", Decision.RECORD_AND_SAMPLE), ("0.900000", Decision.DROP)):
        ctx = propagator.extract(
            {"sentry-trace": f"{TRACE}-{'2' * 16}", "baggage": f"sentry-trace_id={TRACE},sentry-sample_rand={rand}"}
        )
        assert GatewayzSampler(0.5).should_sample(ctx, int(TRACE, 16), "x").decision == expected


def test_frozen_dsc_of_another_trace_is_not_used():
    assert parse_baggage(f"sentry-trace_id={'1' * 32}")[0] is not None
    frozen = parse_baggage(f"sentry-trace_id={'1' * 32},sentry-release=up")[0]
    assert DSC.for_trace(int(TRACE, 16), True, None, frozen)["release"] == "svc@abc"


def test_outgoing_baggage_is_ours_inside_a_span_without_incoming_dsc():
    tracer = TracerProvider(sampler=GatewayzSampler(1.0)).get_tracer("t")
    token = attach(otel_baggage.set_baggage("k", "v"))
    try:
        with tracer.start_as_current_span("root"):
            entries = _inject()["baggage"].split(",")
    finally:
        detach(token)
    assert "k=v" in entries and any(e.startswith("sentry-trace_id=") for e in entries)


SCOPE = {
    "type": "http",
    "method": "POST",
    "scheme": "https",
    "path": "/v1/chat/completions",
    "query_string": b"api_key=sk-secret",
    "client": ("203.0.113.9", 5555),
    "headers": [
        (b"host", b"gw.example"),
        (b"authorization", b"Bearer gw_x"),
        (b"user-agent", b"Browser/1"),
        (b"x-forwarded-for", b"198.51.100.1, 10.0.0.1"),
        (b"cookie", b"session=1"),
    ],
}


def test_request_interface_has_no_query_body_cookie_or_pii_unless_allowed():
    request = request_from_scope(SCOPE, send_pii=False)
    assert request["url"] == "https://gw.example/v1/chat/completions"
    assert set(request["headers"]) == {"host", "authorization"}  # authorization is scrubbed with the event
    assert "env" not in request and "data" not in request
    with_pii = request_from_scope(SCOPE, send_pii=True)
    assert with_pii["headers"]["user-agent"] == "Browser/1"
    assert with_pii["env"] == {"REMOTE_ADDR": "203.0.113.9"}
    assert "cookie" not in with_pii["headers"]


def test_pii_values_are_redacted_wherever_they_appear():
    secrets_ = pii_values(SCOPE)
    frame_vars = {"scope": {"client": ["'203.0.113.9'", "5555"], "xff": "'198.51.100.1, 10.0.0.1'"}}
    redacted = json.dumps(redact_values(frame_vars, secrets_))
    assert "203.0.113.9" not in redacted and "198.51.100.1" not in redacted


def test_span_data_loses_client_address_and_user_agent():
    data = {
        "client.address": "1.2.3.4",
        "user_agent.original": "B",
        "network.peer.address": "1.2.3.4",
        "http.request.header.user_agent": ("B",),
        "url.path": "/x",
    }
    strip_pii_span_data(data, server=True)
    assert data == {"url.path": "/x"}


def test_session_aggregates_count_per_minute_and_are_sent_once():
    sent: list[Any] = []
    sessions = SessionAggregator("svc@abc", "production", sent.append)
    for n in range(20):
        sessions.count(errored=n % 7 == 0, now=120.0 + n)
    sessions.count(errored=False, now=185.0)
    sessions.flush()
    sessions.flush()  # nothing pending: nothing sent

    [envelope] = sent
    [item] = envelope.items
    assert item.type == "sessions"
    payload = item.payload.json
    assert payload["attrs"] == {"release": "svc@abc", "environment": "production"}
    assert payload["aggregates"] == [
        {"started": "1970-01-01T00:02:00Z", "exited": 17, "errored": 3},
        {"started": "1970-01-01T00:03:00Z", "exited": 1},
    ]
