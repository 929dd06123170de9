"""Fast, in-process checks of the example gateway (no telemetry, no sockets).

Both apps are reached through ``httpx.ASGITransport``, which re-raises an unhandled server
exception, so each error kind is asserted as the class the app raised. The end-to-end tests
drive the same app under ``opentelemetry-instrument``.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
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


@contextmanager
def _serve(transport: httpx.AsyncBaseTransport) -> Iterator[httpx.AsyncClient]:
    """A client of the gateway, whose provider client is swapped for one on ``transport``."""
    upstream = httpx.AsyncClient(transport=transport, base_url="http://provider.test", timeout=gateway.PROVIDER_TIMEOUT)
    gateway.app.dependency_overrides[gateway.get_provider_client] = lambda: upstream
    try:
        yield httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url="http://gateway.test")
    finally:
        gateway.app.dependency_overrides.clear()


@pytest.fixture
def client() -> Iterator[httpx.AsyncClient]:
    provider._received.clear()
    with _serve(httpx.ASGITransport(app=provider.app)) as client:
        yield client


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


async def test_chat_relays_provider_json_with_provider_key(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", headers=AUTH, json=CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from the stub provider."
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens"}
    assert gateway.PROVIDER_API_KEY not in response.text

    (await client.post("/v1/messages", headers=AUTH, json=CHAT)).raise_for_status()
    stub = httpx.AsyncClient(transport=httpx.ASGITransport(app=provider.app), base_url="http://p")
    seen = (await stub.get("/_received")).json()
    assert [r["path"] for r in seen] == ["/v1/chat/completions", "/v1/messages"]
    assert seen[0]["headers"]["authorization"] == f"Bearer {gateway.PROVIDER_API_KEY}"
    (await stub.delete("/_received")).raise_for_status()
    assert (await stub.get("/_received")).json() == []


async def test_chat_stream_relays_sse_events(client: httpx.AsyncClient) -> None:
    async with client.stream("POST", "/v1/chat/completions", headers=AUTH, json={**CHAT, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in (await response.aread()).decode().split("\n\n") if e]
    assert len(events) == 7  # 5 content chunks, usage, [DONE]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


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
async def test_chat_failures_raise_spec_errors(
    client: httpx.AsyncClient, model: str, stream: bool, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await client.post("/v1/chat/completions", headers=AUTH, json={**CHAT, "model": model, "stream": stream})


async def test_broke_user_is_refused_before_the_provider(client: httpx.AsyncClient) -> None:
    with pytest.raises(InsufficientCreditsError, match="User has 0 credits"):
        await client.post("/v1/chat/completions", headers={"Authorization": "Bearer gw_broke"}, json=CHAT)
    assert not provider._received


async def test_provider_timeout_is_a_provider_error() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    expected = f"OpenRouter API timeout after {gateway.PROVIDER_TIMEOUT:g}s"
    with _serve(httpx.MockTransport(timeout)) as client, pytest.raises(ProviderAPIError) as raised:
        await client.post("/v1/chat/completions", headers=AUTH, json=CHAT)
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
