"""Standard OpenTelemetry and Sentry variables honoured under ``opentelemetry-instrument``, and correlated logs."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, chat, new_traceparent

pytestmark = pytest.mark.e2e

ALLOW_STUB = {"GATEWAYZ_TRACE_PROPAGATION_TARGETS": r"127\.0\.0\.1"}
B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
B3_HEADERS = {"x-b3-traceid": B3_TRACE, "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-sampled": "1"}


def provider_headers(gateway) -> dict[str, str]:
    [request] = [
        r for r in httpx.get(f"{gateway.provider_url}/_received").json() if r["path"].endswith("/chat/completions")
    ]
    return {k.lower(): v for k, v in request["headers"].items()}


def test_otel_propagators_none_neither_continues_nor_sends(gateway_factory, otlp_recorder):
    gateway = gateway_factory(
        env={**ALLOW_STUB, "OTEL_PROPAGATORS": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint}
    )
    header, trace_id, _ = new_traceparent()

    assert chat(gateway.base_url, headers={"traceparent": header}).status_code == 200

    server = otlp_recorder.wait_for_span("POST /v1/chat/completions")
    assert server["trace_id"] != trace_id  # the caller's trace is not continued
    sent = provider_headers(gateway)
    assert not {"traceparent", "sentry-trace", "baggage", "x-b3-traceid"} & set(sent)


def test_otel_propagators_b3_continues_and_sends_b3_to_allowed_hosts_only(gateway_factory, otlp_recorder):
    env = {"OTEL_PROPAGATORS": "b3multi", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint}
    allowed = gateway_factory(env={**env, **ALLOW_STUB})
    denied = gateway_factory(env=env)

    assert chat(allowed.base_url, headers=B3_HEADERS).status_code == 200
    assert chat(denied.base_url, headers=B3_HEADERS).status_code == 200

    assert otlp_recorder.wait_for_span("POST /v1/chat/completions")["trace_id"] == B3_TRACE
    sent = provider_headers(allowed)
    assert sent["x-b3-traceid"] == B3_TRACE and "traceparent" not in sent and "sentry-trace" not in sent
    assert "x-b3-traceid" not in provider_headers(denied)


def test_general_excluded_urls_add_to_the_health_exclusions(gateway_factory, otlp_recorder):
    gateway = gateway_factory(
        env={"OTEL_PYTHON_EXCLUDED_URLS": "/users/me", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint}
    )

    assert httpx.get(f"{gateway.base_url}/users/me", headers=auth()).status_code == 200
    assert httpx.get(f"{gateway.base_url}/health").status_code == 200
    assert chat(gateway.base_url).status_code == 200

    otlp_recorder.wait_for_span("POST /v1/chat/completions")
    names = {span["name"] for span in otlp_recorder.spans()}
    assert not any("/users/me" in name or "/health" in name for name in names), names


def test_grpc_protocol_asks_for_the_grpc_exporter_and_says_when_it_is_missing(gateway_factory, otlp_recorder):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the gRPC exporter is installed here; this test is about its absence")
    gateway = gateway_factory(
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )

    assert chat(gateway.base_url).status_code == 200
    logs = gateway.logs()
    assert "OTEL_TRACES_EXPORTER: unknown exporter 'otlp_proto_grpc'" in logs
    assert "pip install 'otel-gatewayz[grpc]'" in logs
    assert "could not be configured" not in logs  # everything else runs


def test_sentry_release_environment_and_the_users_resource_attributes(gateway_factory, sentry_recorder, otlp_recorder):
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": sentry_recorder.dsn,
            "SENTRY_RELEASE": f"checkout@{SHA}",
            "SENTRY_ENVIRONMENT": "staging",
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
            "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7",
        }
    )

    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())

    assert response.status_code == 500
    [event] = sentry_recorder.wait_for_events(1)
    assert (event["release"], event["environment"]) == (f"checkout@{SHA}", "staging")
    resource = otlp_recorder.wait_for_span("GET /v1/errors/{kind}")["resource"]
    assert (resource["service.version"], resource["service.instance.id"]) == (SHA, "pod-7")
    assert resource["deployment.environment.name"] == "staging"


def test_error_and_access_lines_carry_the_trace_and_event_ids(gateway_factory, sentry_recorder):
    gateway = gateway_factory(env={"SENTRY_DSN": sentry_recorder.dsn})
    header, trace_id, _ = new_traceparent()

    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers={**auth(), "traceparent": header})
    assert chat(gateway.base_url, headers={"traceparent": new_traceparent()[0]}).status_code == 200

    event_id = response.json()["error"]["event_id"]
    logs = gateway.logs()
    assert f"Exception in ASGI application (trace_id={trace_id} sentry_event_id={event_id})" in logs
    assert re.search(rf'"GET /v1/errors/provider HTTP/1.1" 500 Internal Server Error trace_id={trace_id}', logs)
    assert re.search(r'"POST /v1/chat/completions HTTP/1.1" 200 OK trace_id=[0-9a-f]{32}', logs)


def test_log_correlation_can_be_turned_off(gateway_factory):
    gateway = gateway_factory(env={"GATEWAYZ_LOG_CORRELATION": "false"})

    assert chat(gateway.base_url).status_code == 200
    httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())

    assert "trace_id=" not in gateway.logs()
