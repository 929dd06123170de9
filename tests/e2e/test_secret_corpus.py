"""Issue 13 end to end: every format of the rule set, planted everywhere a request can carry it, never leaves.

The corpus (``tests/secret_corpus.py``) has two synthetic examples of every rule of
detect-secrets and of our supplement. Each is planted in an exception message, a URL path, a
query, a model name, a captured header, a JSON body under a secret key and the server's own
argv; then every byte that left is scanned: decompressed Sentry envelopes, OTLP protobuf,
``/metrics`` and the logs. Prompt content is planted too and must stay out unless allowed.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.helpers import CHAT_PATH, RAW_CHAT_PATH, auth, chat, everything_that_left, leak_env
from tests.secret_corpus import secret_samples

pytestmark = pytest.mark.e2e

PROMPT = "Summarise the confidential Q3 board deck, page 7"
ARGV_SECRET = "sk_live_" + "Zq8rT2vB9nM4kL7pW3xC6yH1" * 2


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable() and value == value.strip()


def _plant(base_url: str, sample) -> None:
    """One fresh connection per request: uvicorn closes a connection after an unhandled error."""
    text, secret = sample.text, sample.secret

    def get(path: str, **kwargs) -> None:
        httpx.get(f"{base_url}{path}", headers={**auth("planter"), **kwargs.pop("headers", {})}, timeout=30, **kwargs)

    if sample.keyed_only:
        get("/v1/errors/unique", params={"message": f"rejected: api_key={secret}"})
        httpx.post(f"{base_url}/auth/login", json={"email": "planter@example.com", "password": secret}, timeout=30)
        return
    # As it appears (with the context its rule needs), in every place a request can carry it.
    get("/v1/errors/unique", params={"message": f"Upstream 401: {text}"})
    get(f"/v1/keys/{quote(text, safe='')}")  # an unmatched route: url.path, a counted 404
    get("/users/me", params={"q": text})
    if _header_safe(text):
        get("/users/me", headers={"X-Request-Note": text})
    if not any(c.isspace() for c in text):
        chat(base_url, user="planter", model=text)


def _pieces(secret: str) -> list[bytes]:
    """The secret and two 16-character pieces of its middle (a partial leak is a leak)."""
    middle = len(secret) // 2
    return [
        secret.encode(),
        *(secret[i : i + 16].encode() for i in (middle - 16, middle) if i >= 0 and len(secret) >= 32),
    ]


@pytest.fixture
def corpus_gateway(gateway_factory, sentry_recorder, otlp_recorder):
    def start(**env: str):
        return gateway_factory(
            env={
                **leak_env(sentry_recorder.dsn, otlp_recorder.endpoint),
                "GATEWAYZ_ERROR_EVENT_BUDGET": "unlimited",  # one event per planted sample
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-request-note,user-agent",
                **env,
            },
            extra_args=["--ssl-keyfile-password", ARGV_SECRET],
        )

    return start


def test_no_format_of_the_rule_set_leaves_the_process(corpus_gateway, sentry_recorder, otlp_recorder):
    gateway = corpus_gateway()
    samples = secret_samples()
    assert len({s.format for s in samples}) >= 60  # the whole rule set, not a handful

    for sample in samples:
        _plant(gateway.base_url, sample)
    sentry_recorder.wait_for_events(len(samples), timeout=60)
    time.sleep(2.0)  # the last batches of spans, metrics and logs

    left = everything_that_left(gateway, sentry_recorder, otlp_recorder)
    leaked = sorted({s.format for s in samples for piece in _pieces(s.secret) if piece in left})
    assert not leaked, f"formats that left the process: {leaked}"
    assert ARGV_SECRET.encode() not in left  # sys.argv reaches Sentry's extra, scrubbed
    assert b"[REDACTED]" in sentry_recorder.all_bytes()
    # Grouping keys are scrubbed before they are normalised: no secret hides in a fingerprint.
    fingerprints = " ".join(part for e in sentry_recorder.events() for part in e.get("fingerprint") or ())
    assert "[REDACTED]" in fingerprints
    assert not [s.format for s in samples for piece in _pieces(s.secret) if piece.decode() in fingerprints]


@pytest.mark.parametrize("allowed", [False, True])
def test_prompt_content_stays_out_unless_allowed(corpus_gateway, sentry_recorder, otlp_recorder, allowed):
    gateway = corpus_gateway(GATEWAYZ_CAPTURE_MESSAGE_CONTENT="true" if allowed else "false")

    # The provider fails: the route's frame locals (the request body, with the prompt) reach Sentry.
    messages = [{"role": "user", "content": PROMPT}]
    response = chat(gateway.base_url, model="error-500", messages=messages, path=RAW_CHAT_PATH)
    assert response.status_code == 500
    sentry_recorder.wait_for_events(1)
    time.sleep(1.0)

    left = everything_that_left(gateway, sentry_recorder, otlp_recorder)
    assert (PROMPT.encode() in left) is allowed


def test_a_provider_error_body_echoing_the_key_is_scrubbed_everywhere(corpus_gateway, sentry_recorder, otlp_recorder):
    """The openai SDK puts the provider's error body in its exception; OpenAI's 401 body echoes the key."""
    provider_key = "sk-proj-" + "Q7wE9rT2yU4iO6pA8sD1fG3hJ5kL0zX" * 2
    gateway = corpus_gateway(PROVIDER_API_KEY=provider_key)

    for _ in range(2):
        response = httpx.post(
            f"{gateway.base_url}{CHAT_PATH}",
            params={"mapped": "false"},  # the SDK's exception escapes: its message is the event's
            headers=auth("planter"),
            timeout=30,
            json={"model": "error-401", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 500
    events = sentry_recorder.wait_for_events(2, timeout=30)
    time.sleep(1.0)

    values = [e["exception"]["values"][-1] for e in events]
    assert all("Incorrect API key provided: [REDACTED]" in v["value"] for v in values), values
    assert events[0]["fingerprint"] == events[1]["fingerprint"]  # the same error, one group
    server = [s for s in otlp_recorder.spans() if s["kind"] == "SERVER" and CHAT_PATH in s["name"]]
    messages = [e["attributes"].get("exception.message", "") for s in server for e in s["events"]]
    assert any("Incorrect API key provided: [REDACTED]" in m for m in messages), messages
    assert "Incorrect API key provided: [REDACTED]" in gateway.logs()  # uvicorn's traceback line
    left = everything_that_left(gateway, sentry_recorder, otlp_recorder)
    assert not [piece for piece in _pieces(provider_key) if piece in left]
