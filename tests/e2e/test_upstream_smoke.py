"""The smoke test ``scripts/newest-upstreams.sh`` runs in a venv of every dependency's newest release.

One gateway under ``opentelemetry-instrument uvicorn``, one chat through the openai SDK and one
unhandled error: every signal must leave (the Sentry error event with its id in the 500 body and
the caller's trace, an OTLP server span with its provider call, the route's Prometheus series).
It asserts nothing about how sampled traces reach Sentry (transactions or span items), so it means
the same on every sentry-sdk major; it runs in the ordinary suite too.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, chat, eventually, new_traceparent

pytestmark = pytest.mark.e2e


def test_an_error_reaches_sentry_and_a_chat_leaves_its_span_and_metrics(
    gateway_factory, sentry_recorder, otlp_recorder
):
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": sentry_recorder.dsn,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "RELEASE_SHA": SHA,
            "APP_ENV": "staging",
        }
    )
    assert chat(gateway.base_url).status_code == 200
    header, trace_id, _ = new_traceparent()

    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers={**auth(), "traceparent": header})

    assert response.status_code == 500
    event_id = response.json()["error"]["event_id"]
    assert event_id, "no Sentry event id in the 500 body: the distro did not configure Sentry"
    [event] = sentry_recorder.wait_for_events(1)
    assert event["event_id"].replace("-", "") == event_id.replace("-", "")
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    assert event["release"] == f"gatewayz-api@{SHA}"

    server = otlp_recorder.wait_for_span("POST /v1/chat/completions")
    clients = [s for s in otlp_recorder.spans() if s["trace_id"] == server["trace_id"] and s["kind"] == "CLIENT"]
    assert clients, "the provider call made no client span"

    def scraped() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        return text if 'http_route="/v1/chat/completions"' in text else None

    metrics = eventually(scraped, what="the chat route's metrics")
    assert "http_server_request_duration_seconds_count{" in metrics
    assert "configuration failed" not in gateway.logs()
