"""Usage read from provider answers as their bytes pass: JSON and SSE, OpenAI and Anthropic formats."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from otel_gatewayz._spend.usage import MAX_JSON_BYTES, UnsupportedEncoding, UsageReader, usage_reader

OPENAI_USAGE = {
    "prompt_tokens": 1112,
    "completion_tokens": 69,
    "total_tokens": 1181,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "o4-mini-2025-04-16",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": 'say "usage": {"x": 1}'}}],
    "usage": OPENAI_USAGE,
}


def _sse(*events: dict[str, object], named: bool = False) -> bytes:
    out = b""
    for event in events:
        name = f"event: {event['type']}\n" if named else ""
        out += f"{name}data: {json.dumps(event)}\n\n".encode()
    return out


def _chunk(content: str, usage: object = None) -> dict[str, object]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "o4-mini-2025-04-16",
        "choices": [{"index": 0, "delta": {"content": content}}] if usage is None else [],
        "usage": usage,
    }


OPENAI_STREAM = _sse(_chunk("Hello"), _chunk(" there"), _chunk("", OPENAI_USAGE)) + b"data: [DONE]\n\n"
ANTHROPIC_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "model": "claude-sonnet-4-5",
        "content": [],
        "usage": {"input_tokens": 88, "cache_read_input_tokens": 1024, "output_tokens": 1},
    },
}
ANTHROPIC_STREAM = _sse(
    ANTHROPIC_START,
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
    {"type": "message_stop"},
    named=True,
)


def _read(body: bytes, sse: bool, step: int, encoding: str | None = None) -> UsageReader:
    reader = UsageReader(sse, encoding)
    for i in range(0, len(body), step):
        reader.feed(body[i : i + step])
    return reader


def _tokens(reader: UsageReader) -> dict[str, int]:
    found = reader.result()
    assert found is not None
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "output_reasoning_tokens")
    return {key: found.tokens(key) for key in keys} | {"model": found.model}  # type: ignore[dict-item]


OPENAI_TOKENS = {
    "input_tokens": 1112,
    "output_tokens": 69,
    "cache_read_tokens": 1024,
    "cache_write_tokens": 0,
    "output_reasoning_tokens": 64,
    "model": "o4-mini-2025-04-16",
}
# genai-prices counts Anthropic's cached tokens into input_tokens (as OpenAI's prompt_tokens does).
ANTHROPIC_TOKENS = {
    "input_tokens": 1112,
    "output_tokens": 5,
    "cache_read_tokens": 1024,
    "cache_write_tokens": 0,
    "output_reasoning_tokens": 0,
    "model": "claude-sonnet-4-5",
}


@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_openai_json_and_stream_read_whatever_the_chunking(step: int):
    assert _tokens(_read(json.dumps(COMPLETION).encode(), sse=False, step=step)) == OPENAI_TOKENS
    assert _tokens(_read(OPENAI_STREAM, sse=True, step=step)) == OPENAI_TOKENS


@pytest.mark.parametrize("step", [1, 13, 100_000])
def test_anthropic_json_and_stream_read_whatever_the_chunking(step: int):
    message = {
        **ANTHROPIC_START["message"],
        "usage": {"input_tokens": 88, "cache_read_input_tokens": 1024, "output_tokens": 5},
    }  # type: ignore[dict-item]
    assert _tokens(_read(json.dumps(message).encode(), sse=False, step=step)) == ANTHROPIC_TOKENS
    assert _tokens(_read(ANTHROPIC_STREAM, sse=True, step=step)) == ANTHROPIC_TOKENS


def test_a_cut_anthropic_stream_counts_what_message_start_reported():
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_delta")]
    assert _tokens(_read(cut, sse=True, step=50))["input_tokens"] == 1112


def test_a_stream_without_usage_and_an_error_body_read_nothing():
    assert _read(_sse(_chunk("a"), _chunk("b")) + b"data: [DONE]\n\n", sse=True, step=9).result() is None
    assert _read(b'{"error": {"message": "x"}}', sse=False, step=5).result() is None
    assert _read(b"<html>502</html>", sse=False, step=5).result() is None


def test_usage_null_chunks_are_not_parsed(monkeypatch: pytest.MonkeyPatch):
    """OpenAI sends ``"usage": null`` in every chunk when usage is asked for: only the usage chunk is parsed."""
    parsed: list[bytes] = []
    original = json.loads
    monkeypatch.setattr(json, "loads", lambda data, **kw: parsed.append(data) or original(data, **kw))
    assert _tokens(_read(OPENAI_STREAM, sse=True, step=1000))["output_tokens"] == 69
    assert len(parsed) == 1


def test_crlf_and_compressed_bodies_are_read_on_a_copy():
    crlf = OPENAI_STREAM.replace(b"\n", b"\r\n")
    assert _tokens(_read(crlf, sse=True, step=3)) == OPENAI_TOKENS
    gz = gzip.compress(json.dumps(COMPLETION).encode())
    assert _tokens(_read(gz, sse=False, step=10, encoding="gzip")) == OPENAI_TOKENS
    deflated = zlib.compress(OPENAI_STREAM)
    assert _tokens(_read(deflated, sse=True, step=10, encoding="deflate")) == OPENAI_TOKENS


def test_which_bodies_are_read():
    assert usage_reader("application/json; charset=utf-8", "") is not None
    assert usage_reader("text/event-stream", "identity") is not None
    assert usage_reader("text/html", "") is None
    with pytest.raises(UnsupportedEncoding):
        usage_reader("application/json", "br")


def test_a_huge_json_body_is_a_counted_problem_not_a_copy():
    reader = UsageReader(sse=False)
    reader.feed(b" " * (MAX_JSON_BYTES + 1))
    reader.feed(json.dumps(COMPLETION).encode())
    assert reader.problem == "body_too_large" and reader.result() is None


def test_responses_api_stream():
    usage = {
        "input_tokens": 20,
        "output_tokens": 30,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 10},
    }
    completed = {"type": "response.completed", "response": {"object": "response", "model": "gpt-5", "usage": usage}}
    tokens = _tokens(_read(_sse({"type": "response.output_text.delta", "delta": "x"}, completed), sse=True, step=11))
    assert (tokens["input_tokens"], tokens["output_tokens"], tokens["output_reasoning_tokens"]) == (20, 30, 10)


def test_embeddings_count_their_input_tokens():
    body = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [],
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    tokens = _tokens(_read(json.dumps(body).encode(), sse=False, step=10))
    assert (tokens["input_tokens"], tokens["output_tokens"], tokens["model"]) == (8, 0, "text-embedding-3-small")
