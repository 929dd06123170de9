"""Fast, in-process checks of the example gateway (no telemetry, no sockets).

Both apps are reached through ASGI transports, which re-raise an unhandled server exception,
so each error kind is asserted as the class the app raised. The gateway's SDK client gets the
transport of the HTTP library its SDK is built on (httpx2 for openai 3.x). The end-to-end tests
drive the same app under ``opentelemetry-instrument``.
"""

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest

from examples.gateway import app as gateway
from examples.gateway import provider
from examples.gateway.errors import (
    AuthenticationError,
    InsufficientCreditsError,
    ProviderAPIError,
    RateLimitExceeded,
    ValidationError,
)

pytestmark = pytest.mark.asyncio

AUTH = {"Authorization": "Bearer gw_alice"}
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "say hi"}]}
SDK, RAW = "/v1/chat/completions", "/v1/raw/chat/completions"
# The HTTP library under the openai SDK (httpx2 for openai 3.x, httpx before).
SDK_HTTP = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.partition(".")[0])


@contextmanager
def _serve(transport: httpx.AsyncBaseTransport) -> Iterator[httpx.AsyncClient]:
    """A client of the gateway, whose provider clients (raw and SDK) are swapped for ones on the stub's app."""
    upstream = httpx.AsyncClient(transport=transport, base_url="http://provider.test", timeout=gateway.PROVIDER_TIMEOUT)
    sdk = openai.AsyncOpenAI(
        base_url="http://provider.test/v1",
        api_key=gateway.PROVIDER_API_KEY,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(transport=SDK_HTTP.ASGITransport(app=provider.app)),
    )
    gateway.app.dependency_overrides[gateway.get_provider_client] = lambda: upstream
    gateway.app.dependency_overrides[gateway.get_openai_client] = lambda: sdk
    try:
        yield httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url="http://gateway.test")
    finally:
        gateway.app.dependency_overrides.clear()


@pytest.fixture
def client() -> Iterator[httpx.AsyncClient]:
    provider._received.clear()
    with _serve(httpx.ASGITransport(app=provider.app)) as client:
        yield client


@pytest.fixture
def stub() -> httpx.AsyncClient:
    provider._received.clear()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=provider.app), base_url="http://p")


async def test_auth_required_and_user_derived_from_key(client: httpx.AsyncClient) -> None:
    async def me(key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await client.get("/users/me", headers=headers)

    assert (await me(None)).status_code == 401
    bad = await me("sk-not-ours")
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"

    alice = (await me("gw_alice")).json()
    assert (alice["id"], alice["email"]) == ("alice", "alice@example.com")
    assert (alice["credits"], alice["plan"]) == (1000, "pro")
    broke = (await me("gw_broke_free")).json()
    assert (broke["credits"], broke["plan"]) == (0, "pro")
    assert (await me("gw_free-1")).json()["plan"] == "free"


async def test_chat_relays_provider_json_with_provider_key(client: httpx.AsyncClient, stub: httpx.AsyncClient) -> None:
    for path in (SDK, RAW):
        response = await client.post(path, headers=AUTH, json=CHAT)
        assert response.status_code == 200
        body = response.json()
        assert body["choices"][0]["message"]["content"] == "Hello from the stub provider."
        assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens"}
        assert gateway.PROVIDER_API_KEY not in response.text

    seen = (await stub.get("/_received")).json()
    assert [r["path"] for r in seen] == ["/v1/chat/completions", "/v1/chat/completions"]
    assert [r["headers"]["authorization"] for r in seen] == [f"Bearer {gateway.PROVIDER_API_KEY}"] * 2
    assert "x-stainless-lang" in seen[0]["headers"]  # the first went through the openai SDK
    (await stub.delete("/_received")).raise_for_status()
    assert (await stub.get("/_received")).json() == []


@pytest.mark.parametrize("path", [SDK, RAW])
async def test_chat_stream_relays_sse_events(client: httpx.AsyncClient, path: str) -> None:
    async with client.stream("POST", path, headers=AUTH, json={**CHAT, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in (await response.aread()).decode().split("\n\n") if e]
    assert len(events) == 7  # 5 content chunks, usage, [DONE]
    assert all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2].removeprefix("data: "))["usage"]["completion_tokens"] == 5
    assert events[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("model", "stream", "sdk_error"),
    [
        ("error-500", False, openai.InternalServerError),
        ("error-500", True, openai.InternalServerError),
        ("rate-limited", False, openai.RateLimitError),
        ("error-401", False, openai.AuthenticationError),
    ],
)
async def test_sdk_route_answers_provider_failures_502_from_the_sdk_error(
    client: httpx.AsyncClient, model: str, stream: bool, sdk_error: type[Exception]
) -> None:
    body = {**CHAT, "model": model, "stream": stream}
    response = await client.post(SDK, headers=AUTH, json=body)
    assert (response.status_code, response.json()) == (502, {"detail": "OpenRouter unavailable"})
    with pytest.raises(sdk_error):  # not mapped: the SDK's own exception escapes
        await client.post(SDK, headers=AUTH, json=body, params={"mapped": "false"})


@pytest.mark.parametrize("path", [SDK, RAW])
async def test_the_apps_own_checks_come_first_on_every_chat_route(client: httpx.AsyncClient, path: str) -> None:
    with pytest.raises(ValidationError, match="Invalid model parameter 'gpt-999'"):
        await client.post(path, headers=AUTH, json={**CHAT, "model": "gpt-999"})
    with pytest.raises(InsufficientCreditsError, match="User has 0 credits"):
        await client.post(path, headers={"Authorization": "Bearer gw_broke"}, json=CHAT)
    assert not provider._received


async def test_messages_answers_501_without_the_anthropic_sdk(client: httpx.AsyncClient) -> None:
    if gateway.anthropic is not None:
        pytest.skip("anthropic is installed here (the e2e stack tests drive /v1/messages)")
    response = await client.post("/v1/messages", headers=AUTH, json=CHAT)
    assert response.status_code == 501
    assert "pip install anthropic" in response.json()["detail"]


def _sse(text: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in filter(None, text.split("\n\n")):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_stub_usage_is_realistic_and_known(stub: httpx.AsyncClient) -> None:
    """Prompt 8 + 4 per message + 1 per word; OpenAI's cache rule past 1024 tokens; o-series reasoning."""
    long_prompt = {"role": "user", "content": "word " * 1100}  # 8 + 4 + 1100 = 1112 tokens: 1024 cached
    body = {"model": "o4-mini", "messages": [long_prompt]}
    usage = (await stub.post("/v1/chat/completions", json=body)).json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (1112, 69, 1181)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1024
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 64
    message = await stub.post("/v1/messages", json={"model": "claude-x", "max_tokens": 9, "messages": [long_prompt]})
    anthropic_usage = message.json()["usage"]
    assert (anthropic_usage["input_tokens"], anthropic_usage["cache_read_input_tokens"]) == (88, 1024)


async def test_stub_speaks_the_anthropic_messages_format(stub: httpx.AsyncClient) -> None:
    body = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "say hi please"}]}
    message = (await stub.post("/v1/messages", json=body)).json()
    assert (message["type"], message["role"], message["stop_reason"]) == ("message", "assistant", "end_turn")
    assert message["content"] == [{"type": "text", "text": "Hello from the stub provider."}]
    # 8 for the prompt, 4 for the message, 3 words; nothing cached under 1024 tokens.
    usage = {"input_tokens": 15, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 5}
    assert message["usage"] == usage
    assert message["id"].startswith("msg_")

    streamed = await stub.post("/v1/messages", json={**body, "stream": True})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _sse(streamed.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["usage"] == {**usage, "output_tokens": 1}
    assert "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta") == (
        "Hello from the stub provider."
    )
    assert events[-2][1]["usage"] == {"output_tokens": 5}


@pytest.mark.parametrize(
    ("model", "status", "kind"),
    [("error-500", 500, "api_error"), ("rate-limited", 429, "rate_limit_error"), ("error-401", 401, None)],
)
async def test_stub_anthropic_failures_are_anthropic_error_bodies(
    stub: httpx.AsyncClient, model: str, status: int, kind: str | None
) -> None:
    response = await stub.post(
        "/v1/messages", json={"model": model, "max_tokens": 5, "messages": []}, headers={"x-api-key": "sk-ant-k"}
    )
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == (kind or "authentication_error")
    if status == 401:
        assert "sk-ant-k" in error["error"]["message"]  # echoed, as OpenAI's 401 does (the leak tests need it)


async def test_stub_anthropic_stream_errors_break_off_after_two_deltas(stub: httpx.AsyncClient) -> None:
    body = {"model": "stream-error", "max_tokens": 5, "messages": [], "stream": True}
    events = _sse((await stub.post("/v1/messages", json=body)).text)
    assert [name for name, _ in events][-3:] == ["content_block_delta", "content_block_delta", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("model", "stream", "error", "message"),
    [
        ("gpt-999", False, ValidationError, "Invalid model parameter 'gpt-999'"),
        ("error-500", False, ProviderAPIError, "openrouter returned 500"),
        ("error-500", True, ProviderAPIError, "openrouter returned 500"),
        ("rate-limited", False, RateLimitExceeded, "OpenRouter rate limit exceeded"),
        ("bad-format", False, ValueError, "Unexpected format in response"),
        ("bad-format", True, ValueError, "Unexpected format in response"),
        ("stream-error", True, ProviderAPIError, "stream interrupted"),
    ],
)
async def test_raw_chat_failures_raise_spec_errors(
    client: httpx.AsyncClient, model: str, stream: bool, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await client.post(RAW, headers=AUTH, json={**CHAT, "model": model, "stream": stream})


async def test_provider_timeout_is_a_provider_error() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    expected = f"OpenRouter API timeout after {gateway.PROVIDER_TIMEOUT:g}s"
    with _serve(httpx.MockTransport(timeout)) as client, pytest.raises(ProviderAPIError) as raised:
        await client.post(RAW, headers=AUTH, json=CHAT)
    assert str(raised.value) == expected


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("insufficient_credits", InsufficientCreditsError),
        ("provider", ProviderAPIError),
        ("validation", ValidationError),
        ("unique", ValueError),
        ("rate_limit", RateLimitExceeded),
        ("auth", AuthenticationError),
    ],
)
async def test_error_endpoint_raises_each_kind(client: httpx.AsyncClient, kind: str, error: type[Exception]) -> None:
    assert (await client.get(f"/v1/errors/{kind}")).status_code == 401
    with pytest.raises(error) as raised:
        await client.get(f"/v1/errors/{kind}", headers=AUTH)
    assert type(raised.value) is error
    with pytest.raises(error, match=r"^custom text$"):
        await client.get(f"/v1/errors/{kind}", headers=AUTH, params={"message": "custom text"})


async def test_other_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/v1/errors/nope", headers=AUTH)).status_code == 404
    keys = (await client.get("/api_keys", headers=AUTH)).json()["data"]
    assert "gw_alice" not in str(keys)
    paid = await client.post("/payments", headers=AUTH, json={"amount": 10})
    assert paid.json()["status"] == "succeeded"
    with pytest.raises(ValidationError, match="Invalid payment amount"):
        await client.post("/payments", headers=AUTH, json={"amount": 0})
    login = {"email": "alice@example.com", "password": gateway.DEMO_PASSWORD}
    assert (await client.post("/auth/login", json=login)).json()["user_id"] == "alice"
    with pytest.raises(AuthenticationError, match="Invalid credentials"):
        await client.post("/auth/login", json={**login, "password": "wrong"})


async def test_stub_flaky_models_fail_the_first_attempt_only(stub: httpx.AsyncClient) -> None:
    body = {"model": "flaky-x", "messages": [{"role": "user", "content": "retry me"}]}
    first, second = [await stub.post("/v1/chat/completions", json=body) for _ in range(2)]
    assert (first.status_code, second.status_code) == (500, 200)
    assert second.json()["usage"]["prompt_tokens"] == 14
