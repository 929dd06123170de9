"""Prompt and completion content through the official SDKs: off by default in every byte that leaves.

The ``current`` stack (openai 3.x and anthropic 2.x with the official GenAI instrumentations)
sends a distinctive prompt and the stub provider answers a distinctive completion
(``PROVIDER_REPLY``), as a plain completion, a stream and a provider failure (whose Sentry event
carries the route's frame locals, the request body among them). Neither string, nor its
distinctive word, may appear in the scan of everything that left (Sentry envelopes, OTLP, /metrics,
logs) unless ``GATEWAYZ_CAPTURE_MESSAGE_CONTENT`` is on; then both are on the GenAI span, so the
scan could find them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import auth, build_stack, everything_that_left, leak_env

pytestmark = pytest.mark.e2e
PROMPT_WORD, COMPLETION_WORD = "zebrafinch7Q4X", "quokkaK9W2"
PROMPT = f"Tell me about the {PROMPT_WORD} nebula, briefly"
COMPLETION = f"The {COMPLETION_WORD} nebula is a made-up place."
ROUTES = {
    "openai": ("/v1/chat/completions", {"model": "gpt-4o-mini"}),
    "anthropic": ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64}),
}


@pytest.fixture(scope="module")
def current() -> Path:
    return build_stack("current")


def _post(base_url: str, route: str, **body: Any) -> httpx.Response:
    path, defaults = ROUTES[route]
    payload = {**defaults, "messages": [{"role": "user", "content": PROMPT}], **body}
    return httpx.post(f"{base_url}{path}", json=payload, headers=auth("writer"), timeout=60)


def _chat_spans(recorder: Any) -> list[dict[str, Any]] | None:
    found = [s for s in recorder.spans() if s["name"].startswith("chat ")]
    return found if len(found) >= 3 else None


@pytest.mark.parametrize("allowed", [False, True], ids=["default", "allowed"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_prompt_and_completion_leave_only_when_allowed(
    current, gateway_factory, sentry_recorder, otlp_recorder, route, allowed
):
    env = {
        **leak_env(sentry_recorder.dsn, otlp_recorder.endpoint),
        "GATEWAY_PROVIDER_RETRIES": "0",
        **({"GATEWAYZ_CAPTURE_MESSAGE_CONTENT": "true"} if allowed else {}),
    }
    gateway = gateway_factory(env=env, bin_dir=current, provider_env={"PROVIDER_REPLY": COMPLETION})

    completed = _post(gateway.base_url, route)
    streamed = _post(gateway.base_url, route, stream=True)
    failed = _post(gateway.base_url, route, model="error-500")
    assert (completed.status_code, streamed.status_code, failed.status_code) == (200, 200, 502)
    assert COMPLETION in completed.text and COMPLETION_WORD in streamed.text  # the client gets it, always
    sentry_recorder.wait_for_events(1, timeout=20)
    sentry_recorder.wait_for_transactions(3, timeout=20)
    spans = otlp_recorder.wait_for(_chat_spans, timeout=20)
    time.sleep(2.0)  # the last batches of spans, metrics and logs

    left = everything_that_left(gateway, sentry_recorder, otlp_recorder)
    content = [text for text in (PROMPT, PROMPT_WORD, COMPLETION, COMPLETION_WORD) if text.encode() in left]
    on_spans = " ".join(str(value) for span in spans for value in span["attributes"].values())
    if allowed:
        assert PROMPT in on_spans and COMPLETION in on_spans, [span["attributes"] for span in spans]
        assert content == [PROMPT, PROMPT_WORD, COMPLETION, COMPLETION_WORD]
    else:
        assert content == []
