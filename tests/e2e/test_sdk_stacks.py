"""Real provider SDK stacks end to end: openai 3.x/anthropic 2.x on httpx2, and openai 1.44 on httpx 0.27.

Each stack is its own venv (``scripts/build-stack.sh``, cached by what it is built from); the
gateway runs from it under ``opentelemetry-instrument uvicorn`` and calls the stub provider
through the official ``openai`` SDK (its main route, ``/v1/chat/completions``, which answers a
provider failure with ``HTTPException(502)`` raised from the SDK's exception; ``?mapped=false``
lets the exception escape). The anthropic route is ``tests/e2e/test_anthropic.py``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import CHAT_PATH, SHA, auth, build_stack, crumbs_of, eventually, new_traceparent, tags_of

pytestmark = pytest.mark.e2e
TRACE_HEADERS = ("traceparent", "tracestate", "sentry-trace", "baggage")
STAGING = {"APP_ENV": "staging", "RELEASE_SHA": SHA}
PROVIDER_ENV = {"PROVIDER_CREATED": "1700000000", "PROVIDER_SLOW_SECONDS": "5", "PROVIDER_CHUNK_DELAY": "0.01"}


@pytest.fixture(scope="module", params=["current", "pinned"])
def stack(request: pytest.FixtureRequest) -> Path:
    """The stack venv's bin directory (built once, then cached)."""
    return build_stack(request.param)


def _sdk_chat(base_url: str, user: str = "alice", mapped: bool = True, **body: Any) -> httpx.Response:
    headers = {**auth(user), **body.pop("headers", {})}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    url = f"{base_url}{CHAT_PATH}" + ("" if mapped else "?mapped=false")
    return httpx.post(url, json=payload, headers=headers, timeout=60)


def _received(gateway: Any) -> list[dict[str, Any]]:
    return httpx.get(f"{gateway.provider_url}/_received").json()


def test_responses_and_streams_are_byte_identical_and_carry_no_trace_header(stack, gateway_factory):
    plain = gateway_factory(env=STAGING, bin_dir=stack, instrumented=False, provider_env=PROVIDER_ENV)
    instrumented = gateway_factory(env=STAGING, bin_dir=stack, provider_env=PROVIDER_ENV)
    header, _, _ = new_traceparent()

    bodies = []
    for gateway in (plain, instrumented):
        completion = _sdk_chat(gateway.base_url, headers={"traceparent": header, "baggage": "k=v"})
        streamed = _sdk_chat(gateway.base_url, stream=True, headers={"traceparent": header})
        assert completion.status_code == streamed.status_code == 200, (completion.text, streamed.text)
        bodies.append((completion.content, streamed.content))
    assert bodies[0] == bodies[1]
    assert b'"usage"' in bodies[1][1] and bodies[1][1].endswith(b"data: [DONE]\n\n")
    received = _received(instrumented)
    assert len(received) == 2
    for request in received:
        assert not set(TRACE_HEADERS) & set(request["headers"]), request["headers"]


def test_an_allowed_host_gets_every_trace_header(stack, gateway_factory):
    gateway = gateway_factory(
        env={**STAGING, "GATEWAYZ_TRACE_PROPAGATION_TARGETS": r"127\.0\.0\.1"}, bin_dir=stack, provider_env=PROVIDER_ENV
    )
    header, trace_id, _ = new_traceparent()
    response = _sdk_chat(gateway.base_url, headers={"traceparent": header, "tracestate": "v=1", "baggage": "k=v"})
    assert response.status_code == 200
    [request] = _received(gateway)
    assert set(TRACE_HEADERS) <= set(request["headers"]), request["headers"]
    assert trace_id in request["headers"]["traceparent"] and trace_id in request["headers"]["sentry-trace"]


FAILURES = [
    # (body, mapped, expected status)
    ({"model": "error-500"}, False, 500),
    ({"model": "rate-limited"}, False, 500),
    ({"model": "slow"}, False, 500),
    ({"model": "error-500"}, True, 502),
    ({"model": "stream-drop", "stream": True}, False, None),
]


def test_each_failure_mode_is_one_provider_error_event(stack, gateway_factory, bugsink):
    gateway = gateway_factory(
        env={
            **STAGING,
            "SENTRY_DSN": bugsink.dsn,
            "GATEWAY_PROVIDER_TIMEOUT": "1",
            "GATEWAY_PROVIDER_RETRIES": "1",
            "PROVIDER_API_KEY": "sk-provider-secret-0123456789abcdef",
        },
        bin_dir=stack,
        provider_env=PROVIDER_ENV,
    )
    trace_ids = []
    for body, mapped, status in FAILURES:
        header, trace_id, _ = new_traceparent()
        trace_ids.append(trace_id)
        if body.get("stream"):  # two chunks go out, then the gateway's stream is cut as the provider's was
            with pytest.raises(httpx.RemoteProtocolError):
                _sdk_chat(gateway.base_url, user="user_7", headers={"traceparent": header}, **body)
        else:
            traced = {"traceparent": header}
            response = _sdk_chat(gateway.base_url, user="user_7", mapped=mapped, headers=traced, **body)
            assert response.status_code == status, (body, response.text)
        bugsink.wait_for_events(len(trace_ids), timeout=20)

    events = bugsink.wait_for_events(len(FAILURES), timeout=20)
    assert len(events) == len(FAILURES)
    by_trace = {event["contexts"]["trace"]["trace_id"]: event for event in events}
    assert sorted(by_trace) == sorted(trace_ids)  # one event each, linked to its trace
    for trace_id, (body, _, _) in zip(trace_ids, FAILURES, strict=True):
        event = by_trace[trace_id]
        tags = tags_of(event)
        assert tags["error_type"] == "provider_error", (body, event["fingerprint"])
        assert event["fingerprint"][1] == "provider_error"
        assert event["user"]["id"] == "user_7"
        assert event["contexts"]["request"]["model"] == body["model"]
        provider_crumbs = [c for c in crumbs_of(event) if c["category"] == "provider"]
        assert any(c["message"].startswith("POST 127.0.0.1") for c in provider_crumbs), provider_crumbs
        if body["model"] == "error-500":
            assert tags["provider_status_code"] == "500"
    assert "sk-provider-secret" not in json.dumps(events)
    assert "sk-provider-secret" not in httpx.get(gateway.metrics_url).text


def test_token_usage_and_one_duration_per_sdk_call(stack, gateway_factory):
    env = {**STAGING, "GATEWAY_PROVIDER_RETRIES": "2"}
    gateway = gateway_factory(env=env, bin_dir=stack, provider_env=PROVIDER_ENV)
    assert _sdk_chat(gateway.base_url).status_code == 200
    assert _sdk_chat(gateway.base_url, stream=True).status_code == 200
    assert _sdk_chat(gateway.base_url, model="error-500").status_code == 502  # 3 HTTP attempts, one SDK call
    assert len(_received(gateway)) == 5

    def scraped() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        return text if "gen_ai_client_token_usage" in text and 'gen_ai_request_model="other"' in text else None

    metrics = eventually(scraped, timeout=20, what="gen_ai metrics")
    usage = [line for line in metrics.splitlines() if line.startswith("gen_ai_client_token_usage_count{")]
    assert any('gen_ai_token_type="input"' in line and "gpt-4o-mini" in line for line in usage), usage
    lines = metrics.splitlines()
    counts = [line for line in lines if line.startswith("gen_ai_client_operation_duration_seconds_count{")]
    sdk_failed = [line for line in counts if 'error_type="openai.InternalServerError"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in sdk_failed) == 1, counts  # once, whatever the retries
    # Our httpx-hook metrics leave SDK calls to the official instrumentation: no double count.
    assert not [line for line in counts if 'otel_scope_name="otel_gatewayz"' in line], counts
    first_chunk = [line for line in metrics.splitlines() if "time_to_first_chunk_seconds_count{" in line]
    assert len(first_chunk) == 1 and "gpt-4o-mini" in first_chunk[0], first_chunk


def test_sdk_calls_with_made_up_models_keep_the_token_usage_series_bounded(stack, gateway_factory):
    """The official instrumentation's gen_ai metrics go through our model bound (issue 11 item 6)."""
    import re

    gateway = gateway_factory(env=STAGING, bin_dir=stack, provider_env=PROVIDER_ENV)
    assert _sdk_chat(gateway.base_url).status_code == 200  # a served model takes a slot first
    # The stub answers any name: the first 100 served names take the slots, then "other".
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: _sdk_chat(gateway.base_url, model=f"made-up-{i}").status_code, range(150)))
    assert codes == [200] * 150

    def scraped() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gen_ai_client_token_usage_count{") and 'gen_ai_token_type="input"' in line
        )
        return text if total == 151 else None

    metrics = eventually(scraped, timeout=20, what="token usage of 151 SDK calls")
    usage = [line for line in metrics.splitlines() if line.startswith("gen_ai_client_token_usage_count{")]
    models = {m for line in usage for m in re.findall(r'gen_ai_request_model="([^"]*)"', line)}
    assert "gpt-4o-mini" in models and "other" in models
    assert len(models) <= 100 + 1, sorted(models)
    assert len(usage) <= 2 * (100 + 1)  # input and output tokens per model label


def test_sdk_calls_reach_sentry_as_gen_ai_span_items(stack, gateway_factory, sentry_recorder):
    """As sentry-sdk 3's own OpenAI integration sends them: op ``gen_ai.chat``, the gen_ai data its AI views read."""
    env = {
        **STAGING,
        "SENTRY_DSN": sentry_recorder.dsn,
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "GATEWAYZ_SENTRY_TRACES_VIA": "spans",
    }
    gateway = gateway_factory(env=env, bin_dir=stack, provider_env=PROVIDER_ENV)
    prompt = "zebra-quasar-prompt"
    assert _sdk_chat(gateway.base_url, messages=[{"role": "user", "content": prompt}]).status_code == 200

    def gen_ai_spans() -> list[dict[str, Any]] | None:
        spans = [s for item in sentry_recorder.items("span") for s in item.json()["items"]]
        found = [s for s in spans if s["attributes"]["sentry.op"]["value"] == "gen_ai.chat"]
        return found or None

    [span] = eventually(gen_ai_spans, timeout=20, what="a gen_ai.chat span item")
    attrs = {key: value["value"] for key, value in span["attributes"].items()}
    assert span["name"] == "chat gpt-4o-mini" and span["status"] == "ok" and not span["is_segment"]
    assert (attrs["gen_ai.operation.name"], attrs["gen_ai.request.model"]) == ("chat", "gpt-4o-mini")
    assert attrs["gen_ai.system"] == attrs["gen_ai.provider.name"] == "openrouter"  # the request context
    assert (
        attrs["gen_ai.usage.total_tokens"] == attrs["gen_ai.usage.input_tokens"] + attrs["gen_ai.usage.output_tokens"]
    )
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert prompt.encode() not in sentry_recorder.all_bytes()  # content stays out by default
