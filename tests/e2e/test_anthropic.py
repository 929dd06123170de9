"""The anthropic 2.x route (``POST /v1/messages``, ``AsyncAnthropic.messages.create``) end to end.

Only the ``current`` stack has anthropic (2.x on httpx2, with the official GenAI
instrumentation); the ``pinned`` one has none, and the route answers 501 there
(``tests/test_example_app.py``). anthropic 2.x calls the global propagator itself
(``opentelemetry.propagate.inject``), so the trace-header gate is shown on its own requests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, build_stack, crumbs_of, eventually, new_traceparent, tags_of

pytestmark = pytest.mark.e2e
TRACE_HEADERS = ("traceparent", "tracestate", "sentry-trace", "baggage")
STAGING = {"APP_ENV": "staging", "RELEASE_SHA": SHA}
PROVIDER_ENV = {"PROVIDER_CREATED": "1700000000", "PROVIDER_SLOW_SECONDS": "5", "PROVIDER_CHUNK_DELAY": "0.01"}
MODEL = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def current() -> Path:
    return build_stack("current")


def _messages(base_url: str, user: str = "alice", mapped: bool = True, **body: Any) -> httpx.Response:
    headers = {**auth(user), **body.pop("headers", {})}
    payload = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **body}
    url = f"{base_url}/v1/messages" + ("" if mapped else "?mapped=false")
    return httpx.post(url, json=payload, headers=headers, timeout=60)


def _received(gateway: Any) -> list[dict[str, Any]]:
    return httpx.get(f"{gateway.provider_url}/_received").json()


def _events(stream: bytes) -> list[str]:
    return [line.removeprefix(b"event: ").decode() for line in stream.splitlines() if line.startswith(b"event: ")]


def test_messages_and_streams_are_byte_identical_and_carry_no_trace_header(current, gateway_factory):
    plain = gateway_factory(env=STAGING, bin_dir=current, instrumented=False, provider_env=PROVIDER_ENV)
    instrumented = gateway_factory(env=STAGING, bin_dir=current, provider_env=PROVIDER_ENV)
    header, _, _ = new_traceparent()

    bodies = []
    for gateway in (plain, instrumented):
        message = _messages(gateway.base_url, headers={"traceparent": header, "tracestate": "v=1", "baggage": "k=v"})
        streamed = _messages(gateway.base_url, stream=True, headers={"traceparent": header})
        assert message.status_code == streamed.status_code == 200, (message.text, streamed.text)
        bodies.append((message.content, streamed.content))
    assert bodies[0] == bodies[1]
    message = json.loads(bodies[1][0])
    assert (message["type"], message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == ("message", 13, 5)
    assert _events(bodies[1][1]) == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    received = _received(instrumented)
    assert [r["path"] for r in received] == ["/v1/messages"] * 2
    for request in received:
        assert request["headers"]["anthropic-version"]  # the anthropic SDK's request
        assert not set(TRACE_HEADERS) & set(request["headers"]), request["headers"]


def test_an_allowed_host_gets_every_trace_header(current, gateway_factory):
    gateway = gateway_factory(
        env={**STAGING, "GATEWAYZ_TRACE_PROPAGATION_TARGETS": r"127\.0\.0\.1"},
        bin_dir=current,
        provider_env=PROVIDER_ENV,
    )
    header, trace_id, _ = new_traceparent()
    traced = {"traceparent": header, "tracestate": "v=1", "baggage": "k=v"}
    assert _messages(gateway.base_url, headers=traced).status_code == 200
    assert _messages(gateway.base_url, stream=True, headers=traced).status_code == 200
    received = _received(gateway)
    assert len(received) == 2
    for request in received:
        assert set(TRACE_HEADERS) <= set(request["headers"]), request["headers"]
        assert trace_id in request["headers"]["traceparent"] and trace_id in request["headers"]["sentry-trace"]


FAILURES = [
    # (body, mapped, expected status: None for a stream cut after its 200)
    ({"model": "error-500"}, True, 502),
    ({"model": "error-500"}, False, 500),
    ({"model": "stream-drop", "stream": True}, True, None),
]


def test_a_500_and_a_stream_cut_are_one_provider_error_event_each(current, gateway_factory, bugsink):
    gateway = gateway_factory(
        env={
            **STAGING,
            "SENTRY_DSN": bugsink.dsn,
            "GATEWAY_PROVIDER_RETRIES": "1",
            "PROVIDER_API_KEY": "sk-ant-provider-secret-0123456789abcdef",
        },
        bin_dir=current,
        provider_env=PROVIDER_ENV,
    )
    trace_ids = []
    for body, mapped, status in FAILURES:
        header, trace_id, _ = new_traceparent()
        trace_ids.append(trace_id)
        if status is None:  # two deltas go out, then the gateway's stream is cut as the provider's was
            with pytest.raises(httpx.RemoteProtocolError):
                _messages(gateway.base_url, user="user_9", headers={"traceparent": header}, **body)
        else:
            response = _messages(
                gateway.base_url, user="user_9", mapped=mapped, headers={"traceparent": header}, **body
            )
            assert response.status_code == status, (body, response.text)
        bugsink.wait_for_events(len(trace_ids), timeout=20)

    # A stream that works is no event (the GenAI instrumentation's "Failed to detach context" is not one).
    assert _messages(gateway.base_url, stream=True).status_code == 200
    time.sleep(1.0)

    events = bugsink.wait_for_events(len(FAILURES), timeout=20)
    assert len(events) == len(FAILURES), [event["fingerprint"] for event in events]
    by_trace = {event["contexts"]["trace"]["trace_id"]: event for event in events}
    assert sorted(by_trace) == sorted(trace_ids)  # one event each, linked to its trace
    for trace_id, (body, _, status) in zip(trace_ids, FAILURES, strict=True):
        event = by_trace[trace_id]
        tags = tags_of(event)
        assert tags["error_type"] == "provider_error", (body, event["fingerprint"])
        assert event["fingerprint"][1] == "provider_error"
        assert event["user"]["id"] == "user_9"
        assert event["contexts"]["request"] == {
            "endpoint": "/v1/messages",
            "method": "POST",
            "model": body["model"],
            "provider": "anthropic",
            "stream": bool(body.get("stream")),
        }
        provider_crumbs = [c for c in crumbs_of(event) if c["category"] == "provider"]
        assert any(c["message"].startswith("POST 127.0.0.1") for c in provider_crumbs), provider_crumbs
        if status is not None:
            assert tags["provider_status_code"] == "500"
            assert "InternalServerError" in json.dumps(event["exception"])  # anthropic's, as the cause of a 502
    assert "sk-ant-provider-secret" not in json.dumps(events)
    assert "sk-ant-provider-secret" not in httpx.get(gateway.metrics_url).text


def test_one_genai_span_with_token_usage_per_sdk_call(current, gateway_factory, otlp_recorder):
    env = {
        **STAGING,
        "GATEWAY_PROVIDER_RETRIES": "2",
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    gateway = gateway_factory(env=env, bin_dir=current, provider_env=PROVIDER_ENV)
    assert _messages(gateway.base_url).status_code == 200
    assert _messages(gateway.base_url, stream=True).status_code == 200
    assert _messages(gateway.base_url, model="error-500").status_code == 502  # 3 HTTP attempts, one SDK call
    assert len(_received(gateway)) == 5

    def genai_spans(recorder: Any) -> list[dict[str, Any]] | None:
        found = [s for s in recorder.spans() if s["name"].startswith("chat ")]
        return found if len(found) >= 3 else None

    spans = otlp_recorder.wait_for(genai_spans, timeout=20)
    assert len(spans) == 3, [s["name"] for s in spans]  # one per SDK call, not one per HTTP attempt
    ok = [s for s in spans if s["status"]["code"] != "ERROR"]
    assert len(ok) == 2
    for span in ok:
        attrs = span["attributes"]
        assert span["name"] == f"chat {MODEL}"
        assert (attrs["gen_ai.operation.name"], attrs["gen_ai.request.model"]) == ("chat", MODEL)
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (13, 5)
    [failed] = [s for s in spans if s["status"]["code"] == "ERROR"]
    assert failed["attributes"]["error.type"].endswith("InternalServerError")

    def scraped() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        return text if "gen_ai_client_token_usage" in text and 'error_type="anthropic.' in text else None

    metrics = eventually(scraped, timeout=20, what="anthropic gen_ai metrics")
    usage = [line for line in metrics.splitlines() if line.startswith("gen_ai_client_token_usage_count{")]
    for token_type in ("input", "output"):
        [series] = [line for line in usage if f'gen_ai_token_type="{token_type}"' in line and MODEL in line]
        assert 'gen_ai_provider_name="anthropic"' in series and series.endswith(" 2.0"), series
    counts = [
        line
        for line in metrics.splitlines()
        if line.startswith("gen_ai_client_operation_duration_seconds_count{") and "anthropic" in line
    ]
    failed_counts = [line for line in counts if 'error_type="anthropic.InternalServerError"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in failed_counts) == 1, counts  # once, whatever the retries
