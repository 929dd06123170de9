"""The Sentry side without a server: transactions built from spans, events enriched from the request."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_gatewayz._context.state import RequestState, new_breadcrumb
from otel_gatewayz._errors.grouping import ErrorGrouper
from otel_gatewayz._errors.recorder import _mark
from otel_gatewayz._sentry.enrichment import enrich_event
from otel_gatewayz._sentry.transactions import transaction_event


def finished_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "POST /v1/chat/completions",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": "/v1/chat/completions",
            "http.response.status_code": 502,
            "user.id": "u1",
            "gatewayz.user.plan": "pro",
            "gen_ai.request.model": "gpt-4o-mini",
        },
    ):
        with tracer.start_as_current_span(
            "POST",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "url.full": "https://api.example.com/v1/chat?key=secret",
                "http.response.status_code": 200,
            },
        ):
            pass
        with tracer.start_as_current_span("work") as work:
            work.set_status(Status(StatusCode.ERROR))
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.kind == SpanKind.SERVER)
    return root, [s for s in spans if s is not root]


def test_transaction_from_a_server_span_and_its_children():
    root, children = finished_spans()

    event = transaction_event(root, children, "svc")

    assert event["type"] == "transaction"
    assert event["transaction"] == "POST /v1/chat/completions"
    assert event["transaction_info"] == {"source": "route"}
    trace_ctx = event["contexts"]["trace"]
    assert (trace_ctx["op"], trace_ctx["status"]) == ("http.server", "internal_error")  # 502 in Sentry's terms
    assert trace_ctx["trace_id"] == format(root.context.trace_id, "032x")
    assert event["tags"] == {"service": "svc", "model": "gpt-4o-mini", "http.status_code": "502"}
    assert event["user"] == {"id": "u1", "plan": "pro"}
    by_op = {span["op"]: span for span in event["spans"]}
    client = by_op["http.client"]
    assert client["description"] == "POST https://api.example.com/v1/chat"  # never the query
    assert client["parent_span_id"] == trace_ctx["span_id"]
    assert by_op["function"]["status"] == "internal_error"
    assert event["start_timestamp"] <= min(s["start_timestamp"] for s in event["spans"])


def state_with_context() -> RequestState:
    state = RequestState(scope={"type": "http", "route": type("Route", (), {"path": "/v1/chat/completions"})()})
    state.user = {"id": "u1", "email": "u1@example.com"}
    state.request = {"endpoint": "/v1/chat/completions", "model": "gpt-4", "provider": "openrouter"}
    state.breadcrumbs.append(new_breadcrumb("late", "provider", "info", None))
    state.breadcrumbs.appendleft({**new_breadcrumb("early", "auth", "info", None), "timestamp": 1.0})
    return state


class ProviderAPIError(Exception):
    pass


def test_event_enrichment_adds_request_context_and_the_spec_grouping():
    exc = ProviderAPIError("OpenRouter timeout")
    event = {"exception": {"values": []}, "user": {"ip_address": None}}

    enriched = enrich_event(event, {"exc_info": (type(exc), exc, None)}, state_with_context(), ErrorGrouper(), "svc")

    assert enriched is not None
    assert enriched["fingerprint"] == ["ProviderAPIError", "provider_error"]
    assert enriched["tags"] == {
        "service": "svc",
        "model": "gpt-4",
        "provider": "openrouter",
        "error_type": "provider_error",
        "user_impact": "high",
    }
    assert enriched["user"]["id"] == "u1" and "ip_address" in enriched["user"]
    assert enriched["contexts"]["request"]["endpoint"] == "/v1/chat/completions"
    assert [c["message"] for c in enriched["breadcrumbs"]["values"]] == ["early", "late"]  # by time


def test_enrichment_drops_duplicates_and_health_checks_and_keeps_given_fingerprints():
    seen = ValueError("x")
    _mark(seen, "abc")
    assert enrich_event({}, {"exc_info": (ValueError, seen, None)}, None, ErrorGrouper(), "svc") is None
    assert enrich_event({"message": "Health check failed"}, {}, None, ErrorGrouper(), "svc") is None
    fresh = ValueError("y")
    kept = enrich_event({"fingerprint": ["mine"]}, {"exc_info": (ValueError, fresh, None)}, None, ErrorGrouper(), "s")
    assert kept is not None and kept["fingerprint"] == ["mine"]


def test_genai_operation_spans_reach_sentry_as_ai_monitoring_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("opentelemetry.instrumentation.genai.openai")
    with tracer.start_as_current_span("POST /v1/chat/completions", kind=SpanKind.SERVER) as root:
        root.set_attributes({"http.request.method": "POST", "http.route": "/v1/chat/completions"})
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 3,
                    "gen_ai.usage.output_tokens": 5,
                    "gen_ai.usage.cache_read.input_tokens": 2,
                    "gen_ai.usage.reasoning.output_tokens": 1,
                }
            )
    spans = {span.name: span for span in exporter.get_finished_spans()}
    event = transaction_event(spans["POST /v1/chat/completions"], [spans["chat gpt-4o-mini"]], "svc")
    [genai] = event["spans"]
    assert (genai["op"], genai["description"]) == ("gen_ai.chat", "chat gpt-4o-mini")
    assert genai["data"]["gen_ai.system"] == "openai"
    assert genai["data"]["gen_ai.usage.total_tokens"] == 8
    # Token details under the names sentry-sdk 3's own AI integrations use, beside the OTel ones.
    assert genai["data"]["gen_ai.usage.input_tokens.cached"] == 2
    assert genai["data"]["gen_ai.usage.output_tokens.reasoning"] == 1
    assert "gen_ai.usage.input_tokens.cache_write" not in genai["data"]
    assert genai["data"]["gen_ai.request.model"] == "gpt-4o-mini"
