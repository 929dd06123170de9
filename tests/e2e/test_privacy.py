"""Issue 4 end to end: planted secrets never leave the process; trace headers only where allowed."""

from __future__ import annotations

import json
import string
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.helpers import auth, chat, everything_that_left, leak_env

pytestmark = pytest.mark.e2e

_token = st.text(alphabet=string.ascii_letters + string.digits, min_size=20, max_size=32).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
HEADER_CAPTURE = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "authorization,cookie,x-api-key,user-agent",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "authorization,x-api-key",
}


def _plant(base_url: str, secrets: list[str]) -> None:
    """Send requests carrying the secrets in every place a user or upstream could put them."""
    key, token, password, cookie, message_secret, provider_key = secrets
    sneaky = {"X-Api-Key": key, "Cookie": f"session={cookie}", "User-Agent": f"client Bearer {token}"}
    # Query string, headers, a model name shaped like a provider key (span attribute, breadcrumb
    # data, Sentry tag, metric label candidate), an upstream 500 so the event is sent.
    httpx.post(
        f"{base_url}/v1/chat/completions",
        params={"api_key": key, "token": token},
        headers={**auth("planter"), **sneaky},
        json={"model": f"sk-{provider_key}", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    chat(base_url, user="planter", model="error-500", headers=sneaky)
    # An exception message carrying a secret, with the secret also in the query string.
    httpx.get(
        f"{base_url}/v1/errors/unique",
        headers={**auth("planter"), **sneaky},
        params={"message": f"upstream rejected token={message_secret}", "access_token": token},
        timeout=30,
    )
    # A JSON body with a password (the login route raises: frame locals hold the body).
    httpx.post(
        f"{base_url}/auth/login",
        json={"email": "planter@example.com", "password": password},
        headers=sneaky,
        timeout=30,
    )


@pytest.fixture
def leaky_gateway(gateway_factory, sentry_recorder, otlp_recorder):
    return gateway_factory(env={**leak_env(sentry_recorder.dsn, otlp_recorder.endpoint), **HEADER_CAPTURE})


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secrets=st.lists(_token, min_size=6, max_size=6, unique=True))
def test_no_planted_secret_leaves_the_process(leaky_gateway, sentry_recorder, otlp_recorder, secrets):
    before = len(sentry_recorder.events())
    _plant(leaky_gateway.base_url, secrets)
    sentry_recorder.wait_for_events(before + 3)
    otlp_recorder.wait_for(lambda r: any(s["kind"] == "CLIENT" for s in r.spans()) or None)
    time.sleep(1.0)  # one more batch of spans, metrics and logs

    left = everything_that_left(leaky_gateway, sentry_recorder, otlp_recorder)
    for secret in secrets:
        assert secret.encode() not in left, f"planted secret {secret!r} left the process"
    # The markers show the key and never the value.
    assert b"api_key=[REDACTED]" in left
    assert b"[REDACTED]" in sentry_recorder.all_bytes()


def test_markers_keep_the_key_visible(leaky_gateway, sentry_recorder, otlp_recorder):
    _plant(
        leaky_gateway.base_url,
        [
            "Key1abcdefghijklmnopq",
            "Tok2abcdefghijklmnopq",
            "Pass3abcdefghijklmno",
            "Cook4abcdefghijklmno",
            "Msg5abcdefghijklmnop",
            "Prov6abcdefghijklmnop",
        ],
    )
    events = sentry_recorder.wait_for_events(3)
    [unique] = [e for e in events if e["exception"]["values"][-1]["type"] == "ValueError"]
    assert unique["exception"]["values"][-1]["value"] == "upstream rejected token=[REDACTED]"
    assert unique["extra"]["gatewayz_scrubbed"]["count"] >= 1
    spans = otlp_recorder.wait_for(lambda r: [s for s in r.spans() if s["kind"] == "SERVER"] or None)
    headers = [
        s["attributes"]
        for s in spans
        if "http.request.header.x_api_key" in s["attributes"] or "http.request.header.x-api-key" in s["attributes"]
    ]
    assert headers
    for attrs in headers:
        for name in ("x_api_key", "x-api-key", "cookie"):
            value = attrs.get(f"http.request.header.{name}")
            if value is not None:
                assert list(value) == ["[REDACTED]"], (name, value)
        assert "url.query" not in attrs or "[REDACTED]" in attrs["url.query"]
    transactions = sentry_recorder.wait_for_transactions(1)
    assert all("[REDACTED]" not in t["transaction"] for t in transactions)


def test_nothing_planted_is_stored_by_bugsink(bugsink, gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": bugsink.dsn, "APP_ENV": "staging", **HEADER_CAPTURE})
    secrets = [
        "Key1zyxwvutsrqponmlk",
        "Tok2zyxwvutsrqponmlk",
        "Pass3zyxwvutsrqponml",
        "Cook4zyxwvutsrqponml",
        "Msg5zyxwvutsrqponmlk",
        "Prov6zyxwvutsrqponmlk",
    ]
    _plant(gateway.base_url, secrets)
    records = (
        json.dumps(bugsink.wait_for_events(3)) + json.dumps(bugsink.event_records()) + json.dumps(bugsink.issues())
    )
    for secret in secrets:
        assert secret not in records
    assert "token=[REDACTED]" in records


def test_trace_headers_reach_only_allowed_hosts(gateway_factory):
    denied = gateway_factory(env={"SENTRY_TRACES_SAMPLE_RATE": "1.0"})
    assert chat(denied.base_url).status_code == 200
    received = httpx.get(f"{denied.provider_url}/_received").json()
    assert received
    for request in received:
        assert not {"traceparent", "sentry-trace", "baggage", "tracestate"} & set(request["headers"])

    allowed = gateway_factory(
        env={"SENTRY_TRACES_SAMPLE_RATE": "1.0", "GATEWAYZ_TRACE_PROPAGATION_TARGETS": r"127\.0\.0\.1"}
    )
    assert chat(allowed.base_url, headers={"baggage": "tenant=acme"}).status_code == 200
    [request] = httpx.get(f"{allowed.provider_url}/_received").json()
    assert {"traceparent", "sentry-trace"} <= set(request["headers"])
    assert request["headers"]["traceparent"].split("-")[1] == request["headers"]["sentry-trace"].split("-")[0]
