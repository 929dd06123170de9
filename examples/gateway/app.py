"""Example LLM gateway: the app the README demo and the end-to-end tests drive.

It configures no telemetry on purpose. Run it as users would::

    opentelemetry-instrument uvicorn examples.gateway.app:app

and the distro instruments FastAPI and httpx and installs the global exception handler. The app
only says *who* (``set_user_context`` in the auth dependency), *what* (``set_request_context`` in
the routes) and *how it got there* (breadcrumbs), and raises the spec's error kinds unhandled.

The chat routes call the provider as real gateways do, through the official SDKs (their own
errors and retries), and answer a provider failure with ``HTTPException(502)`` raised from the
SDK's exception, as the real Gatewayz backend does (``?mapped=false`` lets the SDK's exception
escape unhandled instead, a 500, as a gateway that maps nothing):

- ``POST /v1/chat/completions``: the ``openai`` SDK (``AsyncOpenAI``; with ``stream``, SSE chunks
  and the ``stream_options`` usage chunk);
- ``POST /v1/messages``: the ``anthropic`` SDK (``AsyncAnthropic``, ``messages.create`` with or
  without ``stream``), when anthropic is installed; a 501 otherwise;
- ``POST /v1/raw/chat/completions``: the same chat relayed with plain httpx, for gateways that call
  providers without an SDK; it raises the spec's error kinds (``ProviderAPIError``,
  ``RateLimitExceeded``...) unhandled. ``POST /v1/raw/messages`` relays Anthropic Messages bodies
  the same way.

Env (read at import): ``GATEWAY_PROVIDER_URL`` (default ``http://127.0.0.1:8001``),
``PROVIDER_API_KEY`` (sent upstream, never logged or returned), ``GATEWAY_PROVIDER_TIMEOUT``
(seconds, default 30), ``GATEWAY_PROVIDER_RETRIES`` (the SDKs' retries, default 2).

Auth: ``Authorization: Bearer gw_<user_id>``; users are derived from the id (ids starting with
``broke`` have 0 credits, ids starting with ``free`` are on the free plan).
"""

import hmac
import importlib
import logging
import os
import re
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

import httpx
import openai
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from otel_gatewayz import add_breadcrumb, capture_errors, set_request_context, set_user_context

from .errors import (
    AuthenticationError,
    InsufficientCreditsError,
    ProviderAPIError,
    RateLimitExceeded,
    ValidationError,
)

__all__ = ["app", "get_anthropic_client", "get_current_user", "get_openai_client", "get_provider_client"]

logger = logging.getLogger(__name__)

try:  # optional: without it, /v1/messages answers 501 (imported this way so type checks need no stubs)
    anthropic: Any = importlib.import_module("anthropic")
except ImportError:
    anthropic = None


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be > 0")
    return value


PROVIDER_URL = os.environ.get("GATEWAY_PROVIDER_URL", "http://127.0.0.1:8001").rstrip("/")
PROVIDER_API_KEY = os.environ.get("PROVIDER_API_KEY", "sk-demo-0000000000000000000000000000")
PROVIDER_TIMEOUT = _env_seconds("GATEWAY_PROVIDER_TIMEOUT", 30.0)
PROVIDER_RETRIES = int(os.environ.get("GATEWAY_PROVIDER_RETRIES", "2"))

# The demo accepts one password for every account; a real gateway checks a hash in its database.
DEMO_PASSWORD = "demo-password"
_API_KEY_RE = re.compile(r"gw_([A-Za-z0-9_-]{1,64})")
_PROVIDER_NAMES = {"openrouter": "OpenRouter", "anthropic": "Anthropic", "openai": "OpenAI"}
_MASKED_KEY = "gw_********"


class User(BaseModel):
    """An API user, as the auth dependency resolves it."""

    id: str
    email: str
    api_key_id: int
    credits: int
    plan: str


class ChatRequest(BaseModel):
    """OpenAI-style body; extra fields (temperature, max_tokens...) are forwarded as they are."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    provider: str = "openrouter"


class MessagesRequest(ChatRequest):
    """Anthropic Messages body (``max_tokens`` is required upstream), for the anthropic provider by default."""

    max_tokens: int = 1024
    provider: str = "anthropic"


class PaymentRequest(BaseModel):
    amount: float


class LoginRequest(BaseModel):
    email: str
    password: str


def _user_for(user_id: str) -> User:
    # Derived rather than stored, so any id works in demos and tests without fixtures.
    return User(
        id=user_id,
        email=f"{user_id}@example.com",
        api_key_id=zlib.crc32(user_id.encode()) % 10000,
        credits=0 if user_id.startswith("broke") else 1000,
        plan="free" if user_id.startswith("free") else "pro",
    )


# --- provider client --------------------------------------------------------------------------

_client: httpx.AsyncClient | None = None


async def get_provider_client() -> httpx.AsyncClient:
    """One pooled client for the process, created on first use (after the distro patched httpx).

    A dependency so tests can swap in a client bound to the stub provider's ASGI app.
    """
    global _client
    if _client is None:
        _client = httpx.AsyncClient(base_url=PROVIDER_URL, timeout=PROVIDER_TIMEOUT)
    return _client


_openai_client: openai.AsyncOpenAI | None = None


async def get_openai_client() -> openai.AsyncOpenAI:
    """The official SDK's async client, created on first use (after the distro instrumented it).

    A dependency (async, so it runs on the event loop) that tests can swap for one on the stub's app.
    """
    global _openai_client
    if _openai_client is None:
        _openai_client = openai.AsyncOpenAI(
            base_url=f"{PROVIDER_URL}/v1",
            api_key=PROVIDER_API_KEY,
            timeout=PROVIDER_TIMEOUT,
            max_retries=PROVIDER_RETRIES,
        )
    return _openai_client


_anthropic_client: Any = None


async def get_anthropic_client() -> Any:
    """The official ``anthropic`` SDK's async client, created on first use; 501 when it is not installed."""
    global _anthropic_client
    if anthropic is None:
        raise HTTPException(status_code=501, detail="/v1/messages needs the anthropic SDK: pip install anthropic")
    if _anthropic_client is None:
        _anthropic_client = anthropic.AsyncAnthropic(
            base_url=PROVIDER_URL,
            api_key=PROVIDER_API_KEY,
            timeout=PROVIDER_TIMEOUT,
            max_retries=PROVIDER_RETRIES,
        )
    return _anthropic_client


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Close the pooled provider clients on shutdown."""
    global _client, _openai_client, _anthropic_client
    yield
    if _client is not None:
        await _client.aclose()
        _client = None
    if _openai_client is not None:
        await _openai_client.close()
        _openai_client = None
    if _anthropic_client is not None:
        await _anthropic_client.close()
        _anthropic_client = None


app = FastAPI(title="otel_gatewayz example gateway", lifespan=lifespan)

# --- auth ---------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


async def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """Resolve the API key to a user and attach the user to the request's telemetry.

    Async on purpose: a sync dependency runs in a worker thread, and context it sets would not
    reach the route.
    """
    match = _API_KEY_RE.fullmatch(credentials.credentials) if credentials else None
    if match is None:
        # An expected 4xx, not an error event.
        raise HTTPException(
            status_code=401,
            detail="Missing or invalid API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = _user_for(match.group(1))
    set_user_context(
        user_id=user.id,
        email=user.email,
        api_key_id=str(user.api_key_id),
        credits=user.credits,
        plan=user.plan,
    )
    add_breadcrumb("User authenticated", category="auth")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
ProviderClient = Annotated[httpx.AsyncClient, Depends(get_provider_client)]
OpenAIClient = Annotated[openai.AsyncOpenAI, Depends(get_openai_client)]
AnthropicClient = Annotated[Any, Depends(get_anthropic_client)]
# ?mapped=false: the SDK's exception escapes unhandled (a 500) instead of the 502 real gateways answer.
Mapped = Annotated[bool, Query()]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# --- inference ----------------------------------------------------------------------------------


def _display(provider: str) -> str:
    return _PROVIDER_NAMES.get(provider, provider)


def _check_upstream(response: httpx.Response, provider: str) -> None:
    """Turn an upstream failure status into the spec's error kinds."""
    status = response.status_code
    if status == httpx.codes.TOO_MANY_REQUESTS:
        retry = response.headers.get("retry-after")
        suffix = f" (retry after {retry}s)" if retry else ""
        raise RateLimitExceeded(f"{_display(provider)} rate limit exceeded{suffix}")
    if response.is_error:
        logger.warning("provider %s returned %s", provider, status)
        raise ProviderAPIError(f"{provider} returned {status}")


async def _send_upstream(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], provider: str, stream: bool
) -> httpx.Response:
    request = client.build_request("POST", path, json=payload, headers={"Authorization": f"Bearer {PROVIDER_API_KEY}"})
    try:
        response = await client.send(request, stream=stream)
    except httpx.TimeoutException as exc:
        timeout = client.timeout.read or PROVIDER_TIMEOUT
        raise ProviderAPIError(f"{_display(provider)} API timeout after {timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise ProviderAPIError(f"{_display(provider)} API unreachable") from exc
    try:
        _check_upstream(response, provider)
    except Exception:
        await response.aclose()
        raise
    return response


async def _sse_events(response: httpx.Response) -> AsyncIterator[list[str]]:
    """Group the body's lines into SSE events (blank-line separated), flushing a trailing one."""
    event: list[str] = []
    async for line in response.aiter_lines():
        if line:
            event.append(line)
        elif event:
            yield event
            event = []
    if event:
        yield event


def _is_error_event(event: list[str]) -> bool:
    return any(
        field == "event" and value.strip() == "error" for field, _, value in (line.partition(":") for line in event)
    )


@capture_errors(operation="stream_chat")
async def relay_stream(response: httpx.Response) -> AsyncIterator[bytes]:
    """Relay the provider's SSE events as they arrive, one write per event.

    Runs after the 200 and its headers went out, so a broken upstream can only be reported by
    raising here; the decorator records the error under the operation name.
    """
    done = False
    try:
        async for event in _sse_events(response):
            if _is_error_event(event):
                raise ProviderAPIError("stream interrupted")
            done = done or "data: [DONE]" in event or "event: message_stop" in event
            yield ("\n".join(event) + "\n\n").encode()
    except httpx.TransportError as exc:  # connection cut or read timeout mid-body
        raise ProviderAPIError("stream interrupted") from exc
    finally:
        await response.aclose()
    if not done:
        raise ProviderAPIError("stream interrupted")


def _completion_json(response: httpx.Response) -> dict[str, Any]:
    """The provider's completion (OpenAI's or Anthropic's), or the spec's "unique" error when it is not one."""
    try:
        data = response.json()
    except ValueError as exc:
        raise ValueError("Unexpected format in response") from exc
    if isinstance(data, dict) and (isinstance(data.get("choices"), list) or data.get("type") == "message"):
        return data
    raise ValueError("Unexpected format in response")


def _begin_chat(body: ChatRequest, user: User, endpoint: str) -> None:
    """What every chat route does before it calls the provider: context, breadcrumbs, the app's own checks."""
    set_request_context(
        endpoint=endpoint,
        method="POST",
        model=body.model,
        provider=body.provider,
        stream=body.stream,
    )
    add_breadcrumb(
        "Chat request started",
        category="inference",
        data={"model": body.model, "stream": body.stream},
    )
    if body.model == "gpt-999":
        raise ValidationError(f"Invalid model parameter '{body.model}'")
    add_breadcrumb("Rate limit check passed", category="rate_limit", data={"plan": user.plan})
    if user.credits <= 0:
        raise InsufficientCreditsError(f"User has {user.credits} credits")
    add_breadcrumb(
        "Calling provider",
        category="provider",
        data={"provider": body.provider, "model": body.model},
    )


def _provider_failed(exc: Exception, provider: str, mapped: bool) -> NoReturn:
    """An SDK's provider failure: a 502 raised from it (grouped as the provider error), or the exception itself."""
    logger.warning("provider %s failed: %s", provider, type(exc).__name__)
    if not mapped:
        raise exc
    raise HTTPException(status_code=502, detail=f"{_display(provider)} unavailable") from exc


@capture_errors(operation="stream_chat")
async def relay_openai_stream(stream: Any) -> AsyncIterator[bytes]:
    """Relay the SDK's parsed chunks as SSE, the usage chunk included, then ``[DONE]``.

    Runs after the 200 went out, so a failure can only be recorded (the decorator) and the stream cut.
    """
    try:
        async for chunk in stream:
            yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n".encode()
    finally:
        await stream.close()
    yield b"data: [DONE]\n\n"


@app.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, user: CurrentUser, client: OpenAIClient, mapped: Mapped = True
) -> dict[str, Any] | StreamingResponse:
    """OpenAI-compatible chat completion through the official ``openai`` SDK (SSE when ``stream``)."""
    _begin_chat(body, user, "/v1/chat/completions")
    payload = body.model_dump(exclude={"provider", "stream"})
    try:
        if body.stream:
            stream = await client.chat.completions.create(
                **payload, stream=True, stream_options={"include_usage": True}
            )
            return StreamingResponse(relay_openai_stream(stream), media_type="text/event-stream", headers=SSE_HEADERS)
        completion = await client.chat.completions.create(**payload)
    except openai.APIError as exc:
        _provider_failed(exc, body.provider, mapped)
    add_breadcrumb("Provider responded", category="provider", data={"model": completion.model})
    result: dict[str, Any] = completion.model_dump(exclude_unset=True)
    return result


@capture_errors(operation="stream_chat")
async def relay_anthropic_stream(stream: Any) -> AsyncIterator[bytes]:
    """Relay the SDK's parsed Messages events as Anthropic SSE (``event:`` names and ``data:``)."""
    try:
        async for event in stream:
            yield f"event: {event.type}\ndata: {event.model_dump_json(exclude_unset=True)}\n\n".encode()
    finally:
        await stream.close()


@app.post("/v1/messages", response_model=None)
async def messages(
    body: MessagesRequest, user: CurrentUser, client: AnthropicClient, mapped: Mapped = True
) -> dict[str, Any] | StreamingResponse:
    """Anthropic Messages API through the official ``anthropic`` SDK (SSE events when ``stream``)."""
    _begin_chat(body, user, "/v1/messages")
    payload = body.model_dump(exclude={"provider", "stream"})
    try:
        if body.stream:
            stream = await client.messages.create(**payload, stream=True)
            return StreamingResponse(
                relay_anthropic_stream(stream), media_type="text/event-stream", headers=SSE_HEADERS
            )
        message = await client.messages.create(**payload)
    except anthropic.APIError as exc:
        _provider_failed(exc, body.provider, mapped)
    add_breadcrumb("Provider responded", category="provider", data={"model": message.model})
    result: dict[str, Any] = message.model_dump(exclude_unset=True)
    return result


async def _relay(body: ChatRequest, user: User, client: httpx.AsyncClient, endpoint: str, upstream: str) -> Any:
    """Relay a chat body upstream with plain httpx (no SDK) and its answer back, bytes as they came."""
    _begin_chat(body, user, endpoint)
    payload = body.model_dump(exclude={"provider"})
    response = await _send_upstream(client, upstream, payload, body.provider, body.stream)
    if body.stream:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aclose()
            raise ValueError("Unexpected format in response")
        return StreamingResponse(relay_stream(response), media_type="text/event-stream", headers=SSE_HEADERS)
    data = _completion_json(response)
    add_breadcrumb("Provider responded", category="provider", data={"status": response.status_code})
    return data


@app.post("/v1/raw/chat/completions", response_model=None)
async def raw_chat_completions(
    body: ChatRequest, user: CurrentUser, client: ProviderClient
) -> dict[str, Any] | StreamingResponse:
    """The same chat relayed with plain httpx (no SDK); upstream failures raise the spec's error kinds."""
    result: dict[str, Any] | StreamingResponse = await _relay(
        body, user, client, "/v1/raw/chat/completions", "/v1/chat/completions"
    )
    return result


@app.post("/v1/raw/messages", response_model=None)
async def raw_messages(
    body: MessagesRequest, user: CurrentUser, client: ProviderClient
) -> dict[str, Any] | StreamingResponse:
    """An Anthropic Messages body relayed with plain httpx (no SDK), as ``/v1/raw/chat/completions`` does."""
    result: dict[str, Any] | StreamingResponse = await _relay(body, user, client, "/v1/raw/messages", "/v1/messages")
    return result


# --- account ------------------------------------------------------------------------------------


@app.get("/users/me")
async def users_me(user: CurrentUser) -> User:
    """The authenticated user."""
    return user


@capture_errors(operation="process_payment", capture_args=True)
async def process_payment(user_id: str, amount: float) -> dict[str, Any]:
    """Charge the user; validated here so a rejected payment is recorded with its arguments."""
    if amount <= 0:
        raise ValidationError("Invalid payment amount")
    add_breadcrumb("Payment recorded", category="db", data={"amount": amount})
    return {
        "id": f"pay_{uuid.uuid4().hex[:16]}",
        "user_id": user_id,
        "amount": amount,
        "status": "succeeded",
    }


@app.post("/payments")
async def payments(body: PaymentRequest, user: CurrentUser) -> dict[str, Any]:
    """Add credits to the authenticated user."""
    set_request_context(endpoint="/payments", method="POST")
    return await process_payment(user.id, body.amount)


@app.post("/auth/login")
async def login(body: LoginRequest) -> dict[str, Any]:
    """Check a password; the response names the key but never contains it."""
    user_id, _, domain = body.email.partition("@")
    add_breadcrumb("Login attempt", category="auth", data={"email_domain": domain})
    valid_id = _API_KEY_RE.fullmatch(f"gw_{user_id}") is not None
    if not (valid_id and hmac.compare_digest(body.password.encode(), DEMO_PASSWORD.encode())):
        raise AuthenticationError("Invalid credentials")
    user = _user_for(user_id)
    set_user_context(user_id=user.id, email=user.email, api_key_id=str(user.api_key_id), plan=user.plan)
    add_breadcrumb("User logged in", category="auth")
    return {"user_id": user.id, "api_key_id": user.api_key_id, "api_key": _MASKED_KEY}


@app.get("/api_keys")
async def api_keys(user: CurrentUser) -> dict[str, list[dict[str, Any]]]:
    """The user's API keys, masked."""
    return {"data": [{"id": user.api_key_id, "name": "default", "key": _MASKED_KEY}]}


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness probe (the distro does not trace it)."""
    return {"status": "ok"}


# --- error showcase -----------------------------------------------------------------------------

_DEMO_ERRORS: dict[str, tuple[type[Exception], str]] = {
    "insufficient_credits": (InsufficientCreditsError, "User has 0 credits"),
    "provider": (ProviderAPIError, "OpenRouter API timeout after 30s"),
    "validation": (ValidationError, "Invalid model parameter 'gpt-999'"),
    "unique": (ValueError, "Unexpected format in response"),
    "rate_limit": (RateLimitExceeded, "Rate limit exceeded: 60 requests per minute"),
    "auth": (AuthenticationError, "Invalid credentials"),
}


# Authenticated so that the events carry a user.
@app.get("/v1/errors/{kind}", dependencies=[Depends(get_current_user)])
async def raise_error(kind: str, message: str | None = None) -> None:
    """Raise one of the spec's error kinds unhandled, as the examples and tests need."""
    if kind not in _DEMO_ERRORS:
        raise HTTPException(status_code=404, detail=f"Unknown error kind, expected one of {sorted(_DEMO_ERRORS)}")
    set_request_context(endpoint="/v1/errors/{kind}", method="GET", error_kind=kind)
    error_type, default = _DEMO_ERRORS[kind]
    raise error_type(message or default)
