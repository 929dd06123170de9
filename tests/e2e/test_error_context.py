"""Issue 3 end to end: context, breadcrumbs, fingerprints and impact reach a real Bugsink.

What needs no real server (capture_errors' arguments, expected errors in production, what is
counted) is checked in-process: tests/unit/test_error_flow.py.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.e2e.helpers import RAW_CHAT_PATH, SHA, auth, chat, crumbs_of, new_traceparent, tags_of

pytestmark = pytest.mark.e2e

STAGING = {"RELEASE_SHA": SHA, "APP_ENV": "staging"}


def _error(gateway, kind: str, user: str = "alice", message: str | None = None) -> httpx.Response:
    params = {"message": message} if message else None
    return httpx.get(f"{gateway.base_url}/v1/errors/{kind}", headers=auth(user), params=params, timeout=30)


def test_the_specs_four_fingerprint_examples_and_grouping(bugsink, gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": bugsink.dsn, **STAGING})

    for kind in ("insufficient_credits", "provider", "validation", "unique"):
        assert _error(gateway, kind).status_code == 500
    assert _error(gateway, "insufficient_credits", message="User has 5 credits left, needs 10").status_code == 500
    assert _error(gateway, "unique", message="upstream timeout after 30s").status_code == 500
    assert _error(gateway, "unique", message="upstream timeout after 31s").status_code == 500

    events = bugsink.wait_for_events(7)
    fingerprints = [tuple(event["fingerprint"]) for event in events]
    assert fingerprints == [
        ("InsufficientCreditsError", "insufficient_credits"),
        ("ProviderAPIError", "provider_error"),
        ("ValidationError", "validation_error"),
        ("ValueError", "Unexpected format in response"),
        ("InsufficientCreditsError", "insufficient_credits"),
        ("ValueError", "upstream timeout after <n>s"),
        ("ValueError", "upstream timeout after <n>s"),
    ]
    # Bugsink honours the fingerprints: 4 issues of the examples, the two credit errors in one,
    # the two timeouts in one.
    counts = sorted(int(issue["digested_event_count"]) for issue in bugsink.issues())
    assert counts == [1, 1, 1, 2, 2]
    assert [tags_of(e)["error_type"] for e in events[:4]] == [
        "insufficient_credits",
        "provider_error",
        "validation_error",
        "other",
    ]


def test_full_error_tracking_flow_event(bugsink, gateway_factory, otlp_recorder):
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": bugsink.dsn,
            **STAGING,
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    header, trace_id, _ = new_traceparent()

    # The plain-httpx relay: its ProviderAPIError escapes unhandled (the SDK route is tests/e2e/test_sdk_stacks.py).
    response = chat(
        gateway.base_url, user="user_123", model="error-500", headers={"traceparent": header}, path=RAW_CHAT_PATH
    )

    assert response.status_code == 500
    [event] = bugsink.wait_for_events(1)
    assert event["release"] == f"gatewayz-api@{SHA}"
    assert event["environment"] == "staging"
    assert event["user"] == {
        "id": "user_123",
        "email": "user_123@example.com",
        "api_key_id": event["user"]["api_key_id"],
        "credits": 1000,
        "plan": "pro",
    }
    assert event["user"]["api_key_id"].isdigit()
    tags = tags_of(event)
    assert (tags["service"], tags["model"], tags["provider"], tags["user_impact"], tags["error_type"]) == (
        "gatewayz-api",
        "error-500",
        "openrouter",
        "high",
        "provider_error",
    )
    assert event["contexts"]["request"] == {
        "endpoint": RAW_CHAT_PATH,
        "method": "POST",
        "model": "error-500",
        "provider": "openrouter",
        "stream": False,
    }
    assert event["fingerprint"] == ["ProviderAPIError", "provider_error"]
    crumbs = crumbs_of(event)
    assert [(c["category"], c["message"]) for c in crumbs] == [
        ("auth", "User authenticated"),
        ("inference", "Chat request started"),
        ("rate_limit", "Rate limit check passed"),
        ("provider", "Calling provider"),
        ("provider", f"POST {gateway.provider_url.split('//')[1]} 500"),
    ]
    assert crumbs[1]["data"] == {"model": "error-500", "stream": False}
    assert crumbs[4]["data"]["status_code"] == 500 and crumbs[4]["data"]["duration_ms"] >= 0
    # Linked to the caller's trace and to the request's server span.
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    spans = otlp_recorder.wait_for(lambda r: [s for s in r.spans() if s["kind"] == "SERVER"] or None)
    [server] = [s for s in spans if s["kind"] == "SERVER"]
    assert event["contexts"]["trace"]["span_id"] == server["span_id"]
    assert server["trace_id"] == trace_id
    assert server["status"]["code"] == "ERROR"
    attrs = server["attributes"]
    assert (attrs["user.id"], attrs["gatewayz.user.plan"], attrs["gatewayz.user.credits"]) == ("user_123", "pro", 1000)
    assert (attrs["gen_ai.request.model"], attrs["gen_ai.provider.name"], attrs["gatewayz.stream"]) == (
        "error-500",
        "openrouter",
        False,
    )
    assert (attrs["gatewayz.error.category"], attrs["gatewayz.user_impact"]) == ("provider_error", "high")
    assert attrs["error.type"] in ("ProviderAPIError", "500")  # the ASGI middleware writes the status last
    assert "user.email" not in attrs  # PII stays off spans unless GATEWAYZ_SPAN_PII
    assert [e["name"] for e in server["events"]][:2] == ["User authenticated", "Chat request started"]
    [exception] = [e for e in server["events"] if e["name"] == "exception"]
    assert exception["attributes"]["exception.type"].endswith("ProviderAPIError")
    [client] = [s for s in otlp_recorder.spans() if s["kind"] == "CLIENT"]
    assert client["attributes"]["user.id"] == "user_123"  # started after set_user_context


def test_concurrent_requests_never_share_context(bugsink, gateway_factory):
    # One fingerprint 200 times: storm control would send 10 of them; this test wants every event.
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": bugsink.dsn,
            **STAGING,
            "SENTRY_TRACES_SAMPLE_RATE": "0.5",
            "GATEWAYZ_ERROR_EVENT_BUDGET": "unlimited",
        }
    )
    users = [f"user{i:03d}" for i in range(200)]

    async def fire() -> list[int]:
        # A 500 re-raised after the response closes the keep-alive connection (Starlette's way).
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=gateway.base_url, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.get("/v1/errors/unique", headers=auth(user), params={"message": f"boom for {user}"})
                    for user in users
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(fire()) == [500] * 200
    events = bugsink.wait_for_events(200, timeout=120)
    assert len(events) == 200
    seen = set()
    for event in events:
        owner = event["exception"]["values"][-1]["value"].removeprefix("boom for ")
        assert event["user"]["id"] == owner
        assert event["user"]["email"] == f"{owner}@example.com"
        assert event["contexts"]["request"]["error_kind"] == "unique"
        assert [c["message"] for c in crumbs_of(event)] == ["User authenticated"]
        seen.add(owner)
    assert seen == set(users)
    # All 200 share one fingerprint: "boom for user<n>" normalises the number away.
    assert len(bugsink.issues()) == 1


def test_errors_inside_a_streamed_response_reach_bugsink_once_with_context(bugsink, gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": bugsink.dsn, **STAGING})

    with httpx.stream(
        "POST",
        f"{gateway.base_url}{RAW_CHAT_PATH}",
        headers=auth("streamer"),
        json={"model": "stream-error", "messages": [], "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        chunks = []
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_text():
                chunks.append(chunk)
    assert any("data:" in chunk for chunk in chunks)

    [event] = bugsink.wait_for_events(1)
    assert event["exception"]["values"][-1]["type"] == "ProviderAPIError"
    assert event["user"]["id"] == "streamer"
    tags = tags_of(event)
    assert (tags["operation"], tags["model"], tags["user_impact"]) == ("stream_chat", "stream-error", "high")
    assert event["contexts"]["error_context"]["operation"] == "stream_chat"
    assert event["contexts"]["request"]["stream"] is True
    assert bugsink.event_count() == 1


def test_streaming_delivers_chunks_as_they_come(gateway_factory):
    gateway = gateway_factory(env=STAGING, provider_env={"PROVIDER_CHUNK_DELAY": "0.3"})

    arrivals = []
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/v1/chat/completions",
        headers=auth(),
        json={"model": "gpt-4", "messages": [], "stream": True},
        timeout=30,
    ) as response:
        for _ in response.iter_raw():
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 5
    # Not buffered: the chunks arrive spread over the provider's delays, not all at the end.
    assert arrivals[-1] - arrivals[0] > 0.6
