"""Stub upstream LLM provider for the example gateway: the OpenAI and the Anthropic wire formats.

Run it with plain ``uvicorn examples.gateway.provider:app --port 8001`` (never instrumented): it
stands in for a third-party LLM API. It records the headers of every request so end-to-end tests
can check which trace headers left the gateway, and the model name selects a failure mode:

=================  ==========================================================================
model              behaviour
=================  ==========================================================================
(anything else)    200 completion JSON, or an SSE stream of chunks
``error-500``      500 with the format's error body
``error-401``      401 echoing the key it was sent, as OpenAI's error body does
``rate-limited``   429 with ``retry-after``
``slow``           sleeps ``PROVIDER_SLOW_SECONDS`` (default 60) before answering
``bad-format``     200 with a non-JSON body
``stream-error``   (stream) 2 chunks, then an ``event: error`` and the end of the body
``stream-drop``    (stream) 2 chunks, then the connection is cut mid-body
``flaky*``         500 for the first attempt of each request body, then the answer: a retry succeeds
=================  ==========================================================================

Usage is what a real provider would count, and known: the prompt is 8 tokens, plus 4 per
message, plus one per word of the messages' text; the completion one per word of the reply
(``Hello from the stub provider.``: 5); a prompt of 1024 tokens or more is cached by OpenAI's rule
(1024, then steps of 128: ``cached_tokens``, or Anthropic's ``cache_read_input_tokens`` beside an
``input_tokens`` that excludes it); ``o1``/``o3``/``o4`` and ``*reasoning*`` models reason for 64
more completion tokens (``reasoning_tokens``).

``/v1/chat/completions`` speaks the OpenAI wire format (what the official ``openai`` SDK
parses): completion JSON with ``usage``, SSE ``chat.completion.chunk`` events ending with a
usage chunk (``choices: []``) and ``data: [DONE]``, and OpenAI-shaped error bodies.
``/v1/messages`` speaks the Anthropic Messages format (what the official ``anthropic`` SDK
parses): ``{"type": "message", ..., "usage": {"input_tokens", "output_tokens"}}``, SSE
``message_start`` / ``content_block_start`` / ``ping`` / ``content_block_delta`` /
``content_block_stop`` / ``message_delta`` (usage) / ``message_stop`` events, and
``{"type": "error", "error": {...}}`` bodies. Ids are derived from the request body, so the
same request gets the same bytes.

Env: ``PROVIDER_CHUNK_DELAY`` (seconds between stream chunks, default 0.01),
``PROVIDER_CREATED`` (a fixed ``created`` timestamp; default: now), ``PROVIDER_REPLY`` (the
completion's text, one chunk per word; default ``Hello from the stub provider.``).
"""

import asyncio
import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

__all__ = ["app"]

CHUNK_DELAY = float(os.environ.get("PROVIDER_CHUNK_DELAY", "0.01"))
SLOW_SECONDS = float(os.environ.get("PROVIDER_SLOW_SECONDS", "60"))
FIXED_CREATED = os.environ.get("PROVIDER_CREATED")
# One chunk per word, each with the whitespace before it: "Hello", " from", ...
REPLY_WORDS = tuple(re.findall(r"\s*\S+", os.environ.get("PROVIDER_REPLY", "Hello from the stub provider.")))
FAIL_AFTER_CHUNKS = 2  # where stream-error / stream-drop break off
# Usage as real providers count it, but known: see _prompt_tokens, _cached and _reasoning.
PROMPT_OVERHEAD_TOKENS = 8
MESSAGE_OVERHEAD_TOKENS = 4
CACHE_MIN_TOKENS = 1024
REASONING_TOKENS = 64

# Bounded so a long benchmark run cannot grow the stub without limit.
_received: deque[dict[str, Any]] = deque(maxlen=1000)
# Request bodies (by their hash) a ``flaky*`` model has failed once already; bounded like _received.
_failed_once: deque[str] = deque(maxlen=1000)

app = FastAPI(title="Stub LLM provider", docs_url=None, redoc_url=None)


def _record(request: Request) -> None:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():  # Starlette yields lower-cased names
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    _received.append({"method": request.method, "path": request.url.path, "headers": headers})


def _created() -> int:
    return int(FIXED_CREATED) if FIXED_CREATED else int(time.time())


def _completion_id(body: dict[str, Any], prefix: str = "chatcmpl-") -> str:
    return prefix + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


_ANTHROPIC_KINDS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}


def _anthropic_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    """The same failure in Anthropic's shape, its error type named as Anthropic names it."""
    body = {"type": "error", "error": {"type": _ANTHROPIC_KINDS.get(status, "api_error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A chat template's tokens: 8 for the prompt, 4 per message, one per word of the messages' text."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    tokens = PROMPT_OVERHEAD_TOKENS
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else ""
        if isinstance(content, list):
            content = " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
        tokens += MESSAGE_OVERHEAD_TOKENS + len(str(content).split())
    return tokens


def _cached(prompt: int) -> int:
    """Prompt tokens served from the cache, by OpenAI's rule: prompts of 1024+ tokens, in steps of 128."""
    return 0 if prompt < CACHE_MIN_TOKENS else CACHE_MIN_TOKENS + (prompt - CACHE_MIN_TOKENS) // 128 * 128


def _reasoning(model: str) -> int:
    return REASONING_TOKENS if model.startswith(("o1", "o3", "o4")) or "reasoning" in model else 0


def _usage(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage object: totals, cached prompt tokens and reasoning tokens in their details."""
    prompt = _prompt_tokens(body)
    reasoning = _reasoning(str(body.get("model", "")))
    completion = len(REPLY_WORDS) + reasoning
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _cached(prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _anthropic_usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    """Anthropic's usage object: ``input_tokens`` excludes the cached part, reported beside it."""
    prompt = _prompt_tokens(body)
    cached = _cached(prompt)
    return {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": output_tokens,
    }


def _chunk(completion_id: str, model: str, content: str, finish: str | None) -> bytes:
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": _created(),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def _stream(model: str, usage: dict[str, Any], completion_id: str) -> AsyncIterator[bytes]:
    for i, word in enumerate(REPLY_WORDS):
        if i == FAIL_AFTER_CHUNKS and model == "stream-error":
            yield b'event: error\ndata: {"error": {"message": "upstream overloaded"}}\n\n'
            return
        if i == FAIL_AFTER_CHUNKS and model == "stream-drop":
            # Raising after the headers went out makes uvicorn cut the connection mid-body.
            raise ConnectionAbortedError("stub provider dropped the stream")
        last = i == len(REPLY_WORDS) - 1
        yield _chunk(completion_id, model, word, "stop" if last else None)
        await asyncio.sleep(CHUNK_DELAY)
    usage_chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": _created(),
        "model": model,
        "choices": [],
        "usage": usage,
    }
    yield f"data: {json.dumps(usage_chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


ErrorBody = Callable[..., Response]


async def _body_or_failure(request: Request, error: ErrorBody) -> dict[str, Any] | Response:
    """The request's JSON body, or the answer of the failure mode its model selects (in ``error``'s format)."""
    _record(request)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return error(400, "'model' is required", "invalid_request_error")
    model: str = body["model"]
    if model == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    if model.startswith("flaky") and (key := _completion_id(body)) not in _failed_once:
        _failed_once.append(key)
        return error(500, "internal error (the retry will succeed)", "server_error")
    if model == "error-500":
        return error(500, "internal error", "server_error")
    if model == "error-401":
        # As OpenAI answers a bad key: the key it was sent, echoed in the error body.
        sent = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return error(401, f"Incorrect API key provided: {sent}.", "invalid_request_error")
    if model == "rate-limited":
        return error(429, "rate limit reached", "rate_limit_error", {"retry-after": "1"})
    if model == "bad-format":
        return PlainTextResponse("<html><body>502 Bad Gateway</body></html>")
    return body


async def _complete(request: Request) -> Response:
    body = await _body_or_failure(request, _error)
    if isinstance(body, Response):
        return body
    model: str = body["model"]
    usage = _usage(body)
    if body.get("stream") is True:
        return StreamingResponse(_stream(model, usage, _completion_id(body)), media_type="text/event-stream")
    return JSONResponse(
        {
            "id": _completion_id(body),
            "object": "chat.completion",
            "created": _created(),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(REPLY_WORDS)},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def _message(
    message_id: str, model: str, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


async def _anthropic_stream(model: str, body: dict[str, Any], message_id: str) -> AsyncIterator[bytes]:
    """The event sequence the Messages API streams, usage in ``message_start`` and ``message_delta``."""
    start = _message(message_id, model, [], None, _anthropic_usage(body, 1))
    yield _event("message_start", {"message": start})
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    yield _event("ping", {})
    for i, word in enumerate(REPLY_WORDS):
        if i == FAIL_AFTER_CHUNKS and model == "stream-error":
            yield _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        if i == FAIL_AFTER_CHUNKS and model == "stream-drop":
            raise ConnectionAbortedError("stub provider dropped the stream")
        yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
        await asyncio.sleep(CHUNK_DELAY)
    yield _event("content_block_stop", {"index": 0})
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    yield _event("message_delta", {"delta": delta, "usage": {"output_tokens": len(REPLY_WORDS)}})
    yield _event("message_stop", {})


async def _anthropic_message(request: Request) -> Response:
    body = await _body_or_failure(request, _anthropic_error)
    if isinstance(body, Response):
        return body
    model: str = body["model"]
    message_id = _completion_id(body, "msg_")
    if body.get("stream") is True:
        return StreamingResponse(_anthropic_stream(model, body, message_id), media_type="text/event-stream")
    usage = _anthropic_usage(body, len(REPLY_WORDS))
    content = [{"type": "text", "text": "".join(REPLY_WORDS)}]
    return JSONResponse(_message(message_id, model, content, "end_turn", usage))


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI-style completion."""
    return await _complete(request)


@app.post("/v1/messages")
async def messages(request: Request) -> Response:
    """Anthropic Messages API."""
    return await _anthropic_message(request)


@app.get("/_received")
async def received() -> list[dict[str, Any]]:
    """What reached the provider, oldest first (tests assert on trace headers here)."""
    return list(_received)


@app.delete("/_received", status_code=204)
async def clear_received() -> None:
    """Forget recorded requests between tests."""
    _received.clear()


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness probe for test harnesses."""
    return {"status": "ok"}
