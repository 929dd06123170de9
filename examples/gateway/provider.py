"""Stub OpenAI-compatible upstream provider for the example gateway.

Run it with plain ``uvicorn examples.gateway.provider:app --port 8001`` (never instrumented): it
stands in for a third-party LLM API. It records the headers of every request so end-to-end tests
can check which trace headers left the gateway, and the model name selects a failure mode:

=================  ==========================================================================
model              behaviour
=================  ==========================================================================
(anything else)    200 completion JSON, or an SSE stream of chunks then ``data: [DONE]``
``error-500``      500 with an OpenAI-style error body
``error-401``      401 echoing the key it was sent, as OpenAI's error body does
``rate-limited``   429 with ``retry-after``
``slow``           sleeps ``PROVIDER_SLOW_SECONDS`` (default 60) before answering
``bad-format``     200 with a non-JSON body
``stream-error``   (stream) 2 chunks, then an ``event: error`` and the end of the body
``stream-drop``    (stream) 2 chunks, then the connection is cut mid-body
=================  ==========================================================================

It speaks the OpenAI wire format (what the official ``openai`` SDK parses): completion JSON
with ``usage``, SSE ``chat.completion.chunk`` events ending with a usage chunk (``choices: []``)
and ``data: [DONE]``, and OpenAI-shaped error bodies. Ids are derived from the request body, so
the same request gets the same bytes.

Env: ``PROVIDER_CHUNK_DELAY`` (seconds between stream chunks, default 0.01),
``PROVIDER_CREATED`` (a fixed ``created`` timestamp; default: now).
"""

import asyncio
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

__all__ = ["app"]

CHUNK_DELAY = float(os.environ.get("PROVIDER_CHUNK_DELAY", "0.01"))
SLOW_SECONDS = float(os.environ.get("PROVIDER_SLOW_SECONDS", "60"))
FIXED_CREATED = os.environ.get("PROVIDER_CREATED")
REPLY_WORDS = ("Hello", " from", " the", " stub", " provider.")
FAIL_AFTER_CHUNKS = 2  # where stream-error / stream-drop break off

# Bounded so a long benchmark run cannot grow the stub without limit.
_received: deque[dict[str, Any]] = deque(maxlen=1000)

app = FastAPI(title="Stub LLM provider", docs_url=None, redoc_url=None)


def _record(request: Request) -> None:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():  # Starlette yields lower-cased names
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    _received.append({"method": request.method, "path": request.url.path, "headers": headers})


def _created() -> int:
    return int(FIXED_CREATED) if FIXED_CREATED else int(time.time())


def _completion_id(body: dict[str, Any]) -> str:
    return "chatcmpl-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _usage(body: dict[str, Any]) -> dict[str, int]:
    messages = body.get("messages")
    prompt = (
        sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        if isinstance(messages, list)
        else 0
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(REPLY_WORDS),
        "total_tokens": prompt + len(REPLY_WORDS),
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


async def _stream(model: str, usage: dict[str, int], completion_id: str) -> AsyncIterator[bytes]:
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


async def _complete(request: Request) -> Response:
    _record(request)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body must be JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "'model' is required", "invalid_request_error")
    model: str = body["model"]
    if model == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    if model == "error-500":
        return _error(500, "internal error", "server_error")
    if model == "error-401":
        # As OpenAI answers a bad key: the key it was sent, echoed in the error body.
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        return _error(401, f"Incorrect API key provided: {sent}.", "invalid_request_error")
    if model == "rate-limited":
        return _error(429, "rate limit reached", "rate_limit_error", {"retry-after": "1"})
    if model == "bad-format":
        return PlainTextResponse("<html><body>502 Bad Gateway</body></html>")
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


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI-style completion."""
    return await _complete(request)


@app.post("/v1/messages")
async def messages(request: Request) -> Response:
    """Anthropic-style path; answers in the same OpenAI shape to keep the stub small."""
    return await _complete(request)


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
