"""A provider's token usage, read from its response body as the chunks pass.

OpenAI-format answers (chat completion JSON, ``chat.completion.chunk`` SSE with the
``stream_options`` usage chunk, Responses API ``response.completed``, embeddings) and Anthropic-format ones
(message JSON, ``message_start`` + ``message_delta`` SSE) carry a ``usage`` object. A JSON body is
kept as the chunks the client holds anyway (up to a bound) and parsed once at its end; an SSE
body is split into events as it passes and only an event with a ``"usage": {`` object is parsed,
so a stream costs one substring test per chunk. What a usage object means (which fields are
input, cached, reasoning) is genai-prices' extractors' job, not ours.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

__all__ = ["MAX_JSON_BYTES", "CallUsage", "UnsupportedEncoding", "UsageReader", "extract", "reported", "usage_reader"]

MAX_JSON_BYTES = 8 * 1024 * 1024  # a bigger JSON answer is not read (counted as a drop)
MAX_EVENT_BYTES = 1024 * 1024  # an SSE event this long without its end stops the reading
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# Wire format -> (genai-prices provider whose extractor reads it, api flavor)
_EXTRACTORS = {
    "openai_chat": ("openai", "chat"),
    "openai_responses": ("openai", "responses"),
    "openai_embeddings": ("openai", "embeddings"),
    "anthropic": ("anthropic", "default"),
}


@dataclass(frozen=True)
class CallUsage:
    """What one provider answer reported: its model and genai-prices' ``Usage``."""

    model: str | None
    usage: Usage
    wire_format: str

    def tokens(self, key: str) -> int:
        return int(reported(self.usage).get(key, 0))


def reported(usage: Usage) -> Mapping[str, Any]:
    """The counts a ``Usage`` holds as reported (validated when it was built; its own accessor validates again)."""
    return vars(usage)


def _wire_format(data: Mapping[str, Any]) -> str | None:
    kind = data.get("type")
    if kind == "message":
        return "anthropic"
    if data.get("object") == "response":
        return "openai_responses"
    if data.get("object") == "list":  # embeddings: input tokens only
        return "openai_embeddings"
    if "choices" in data or str(data.get("object", "")).startswith("chat.completion"):
        return "openai_chat"
    return None


def extract(data: Any, wire_format: str | None = None) -> CallUsage | None:
    """The usage of a response-shaped object, read by genai-prices' extractor for its wire format."""
    if not isinstance(data, Mapping) or not isinstance(data.get("usage"), Mapping):
        return None
    wire_format = wire_format or _wire_format(data)
    if wire_format is None:
        return None
    provider_id, flavor = _EXTRACTORS[wire_format]
    try:
        model, usage = get_snapshot().find_provider(None, provider_id, None).extract_usage(data, api_flavor=flavor)
    except (ValueError, LookupError):
        return None  # no usage in it after all
    return CallUsage(model, usage, wire_format)


class _Decoder:
    """gzip / deflate bodies decoded on a copy, incrementally (the client decodes its own)."""

    def __init__(self, encoding: str) -> None:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)

    def __call__(self, data: bytes) -> bytes:
        return self._zlib.decompress(data)


class UsageReader:
    """Reads usage from a body as it passes; :meth:`result` at the body's end.

    ``problem`` names why nothing could be read (a drop reason), if that is why.
    """

    def __init__(self, sse: bool, encoding: str | None = None) -> None:
        self._sse = sse
        self._decode = _Decoder(encoding) if encoding else None
        self._chunks: list[bytes] = []
        self._size = 0
        self._pending = b""
        self._anthropic: dict[str, Any] | None = None
        self._last: CallUsage | None = None
        self.problem: str | None = None

    def feed(self, data: bytes) -> None:
        if self.problem is not None:
            return
        if self._decode is not None:
            data = self._decode(data)
        if not self._sse:
            self._size += len(data)
            if self._size > MAX_JSON_BYTES:
                self.problem, self._chunks = "body_too_large", []
            else:
                self._chunks.append(data)
            return
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            complete, self._pending = b"", data
        else:
            complete, self._pending = data[:end], data[end + 2 :]
        if len(self._pending) > MAX_EVENT_BYTES:
            self.problem, self._pending = "event_too_large", b""
        if b'"usage"' in complete and _USAGE_OBJECT.search(complete):
            for event in complete.split(b"\n\n"):
                if _USAGE_OBJECT.search(event):
                    self._event(event)

    def _event(self, event: bytes) -> None:
        lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
        try:
            data = json.loads(b"\n".join(lines))
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self._anthropic = data["message"]
        elif kind == "message_delta" and self._anthropic is not None and isinstance(data.get("usage"), dict):
            usage = {**self._anthropic.get("usage", {}), **{k: v for k, v in data["usage"].items() if v is not None}}
            self._anthropic = {**self._anthropic, "usage": usage}
        elif kind == "response.completed" and isinstance(data.get("response"), dict):
            self._last = extract(data["response"], "openai_responses") or self._last
        else:
            self._last = extract(data, "openai_chat") or self._last

    def result(self) -> CallUsage | None:
        """The usage the body reported (for a cut Anthropic stream: what ``message_start`` said)."""
        if self._anthropic is not None:
            return extract(self._anthropic, "anthropic")
        if self._sse or not self._chunks:
            return self._last
        try:
            data = json.loads(b"".join(self._chunks))
        except ValueError:
            return None
        finally:
            self._chunks = []
        return extract(data)


def usage_reader(content_type: str, content_encoding: str) -> UsageReader | None:
    """A reader for a body of this type, or None when it cannot carry usage we read (or is encoded unknowably)."""
    media = content_type.split(";", 1)[0].strip().lower()
    sse = media == "text/event-stream"
    if not sse and not (media == "application/json" or media.endswith("+json")):
        return None
    encoding = content_encoding.strip().lower() or None
    if encoding == "identity":
        encoding = None
    if encoding not in (None, "gzip", "deflate"):
        raise UnsupportedEncoding(encoding or "")
    return UsageReader(sse, encoding)


class UnsupportedEncoding(ValueError):
    """A content encoding the standard library cannot decode (br, zstd): the usage is not read."""
