"""Local traces from OpenTelemetry spans, for Sentry: as transactions, or (``span_items.py``) span items.

Each finished local-root span and its local children are one local trace, cleaned (the clean span
copies the OTLP export uses: each span is scrubbed once for every sender) and handed to a sender
on a background thread behind a bounded queue, so the request path only pays for an append; a
full queue drops and counts. :class:`TransactionSender` makes it one transaction (op
``http.server``/``http.client``, ``gen_ai.chat`` for a GenAI operation with the data keys Sentry's
AI monitoring reads, description ``METHOD /route``, status from the HTTP status), sent as one
envelope through sentry-sdk's own transport, never serialised through the client. It carries what
Sentry's product reads: the trace's DSC (the envelope's ``trace`` header: the caller's frozen one,
or ours), ``request``, ``contexts.response.status_code``, and Sentry's span data keys
(``http.method``, ``url``) beside the OTel ones; the end user's IP and user agent only with PII on.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from .._context.baggage import DscSource, FrozenDsc, incoming_dsc
from .._context.sampling import head_sampled
from .._metrics.drops import DropCounter
from .._privacy.spans import CleanSpans
from .._safety.background import OwnThread, in_background
from .._safety.log import log_once
from .envelopes import TransactionEnvelopes
from .request import request_from_span, strip_pii_span_data
from .sdk import span_status_from_http_code

MAX_CHILDREN = 1000
MAX_OPEN_ROOTS = 10_000
QUEUE_SIZE = 1000
BATCH_INTERVAL = 0.05
ORIGIN = "auto.otel_gatewayz"


def _hex_span(span_id: int) -> str:
    return trace.format_span_id(span_id)


def operation(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:  # Sentry's AI monitoring reads gen_ai.* ops
        return f"gen_ai.{operation}"
    http = "http.request.method" in attrs or "http.method" in attrs
    if span.kind == SpanKind.SERVER:
        return "http.server" if http else "server"
    if span.kind == SpanKind.CLIENT:
        return "http.client" if http else "client"
    if span.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
        return "queue." + span.kind.name.lower()
    return "function"


def _strip_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def description(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    method = attrs.get("http.request.method") or attrs.get("http.method")
    if method and span.kind == SpanKind.SERVER and attrs.get("http.route"):
        return f"{method} {attrs['http.route']}"
    if method and span.kind == SpanKind.CLIENT and (attrs.get("url.full") or attrs.get("http.url")):
        return f"{method} {_strip_query(str(attrs.get('url.full') or attrs.get('http.url')))}"
    return span.name


def span_status(span: ReadableSpan, attrs: Mapping[str, Any]) -> str:
    code = attrs.get("http.response.status_code") or attrs.get("http.status_code")
    if isinstance(code, int):
        return span_status_from_http_code(code)
    return "internal_error" if span.status.status_code == StatusCode.ERROR else "ok"


# The OTel GenAI names of token details, and the names sentry-sdk 3's own AI integrations send them under.
_SENTRY_TOKEN_NAMES = (
    ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.input_tokens.cached"),
    ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.input_tokens.cache_write"),
    ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning"),
)


def _genai_data(attrs: dict[str, Any]) -> None:
    """The keys Sentry's AI monitoring expects beside the OTel GenAI ones (system, total and detailed tokens).

    Sentry prices the tokens itself; our dollar cost stays under the GenAI draft's ``gen_ai.usage.cost.*``.
    """
    if "gen_ai.provider.name" in attrs:
        attrs.setdefault("gen_ai.system", attrs["gen_ai.provider.name"])
    tokens = (attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens"))
    if all(isinstance(count, int) for count in tokens):
        attrs.setdefault("gen_ai.usage.total_tokens", sum(tokens))  # type: ignore[arg-type]
    for otel_name, sentry_name in _SENTRY_TOKEN_NAMES:
        if otel_name in attrs:
            attrs.setdefault(sentry_name, attrs[otel_name])


def _sentry_data(span: ReadableSpan, attrs: dict[str, Any], send_pii: bool) -> dict[str, Any]:
    """The span's attributes plus the keys Sentry's performance product reads, PII removed unless allowed."""
    method = attrs.get("http.request.method") or attrs.get("http.method")
    if method is not None:
        attrs.setdefault("http.method", method)
    code = attrs.get("http.response.status_code") or attrs.get("http.status_code")
    if code is not None:
        attrs.setdefault("http.response.status_code", code)
    url = attrs.get("url.full") or attrs.get("http.url")
    if span.kind == SpanKind.CLIENT and url:
        attrs.setdefault("url", _strip_query(str(url)))
    if not send_pii:
        strip_pii_span_data(attrs, server=span.kind == SpanKind.SERVER)
    return attrs


def sentry_attributes(span: ReadableSpan, send_pii: bool) -> dict[str, Any]:
    """A clean span's attributes as Sentry reads them (its HTTP and AI keys added, PII removed unless allowed)."""
    attrs = _sentry_data(span, dict(span.attributes or {}), send_pii)
    if "gen_ai.operation.name" in attrs:
        _genai_data(attrs)
    return attrs


def _span_payload(span: ReadableSpan, send_pii: bool = False) -> dict[str, Any]:
    attrs = sentry_attributes(span, send_pii)
    payload: dict[str, Any] = {
        "trace_id": trace.format_trace_id(span.context.trace_id),
        "span_id": _hex_span(span.context.span_id),
        "op": operation(span, attrs),
        "description": description(span, attrs),
        "status": span_status(span, attrs),
        "start_timestamp": (span.start_time or 0) / 1e9,
        "timestamp": (span.end_time or 0) / 1e9,
        "origin": ORIGIN,
        "data": attrs,
    }
    if span.parent is not None:
        payload["parent_span_id"] = _hex_span(span.parent.span_id)
    return payload


# The spec's request context (``set_request_context``), as the root span's attributes carry it.
_SPEC_REQUEST_ATTRS = (
    ("gatewayz.request.endpoint", "endpoint"),
    ("gatewayz.request.method", "method"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.provider.name", "provider"),
    ("gatewayz.stream", "stream"),
)


def _spec_request_context(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: attrs[attr] for attr, key in _SPEC_REQUEST_ATTRS if attr in attrs}


def transaction_event(
    root: ReadableSpan,
    children: list[ReadableSpan],
    service: str,
    dsc: DscSource | None = None,
    incoming: FrozenDsc | None = None,
    send_pii: bool = False,
) -> dict[str, Any]:
    """The Sentry transaction event for a local root span and its finished children."""
    root_payload = _span_payload(root, send_pii)
    attrs = root_payload["data"]
    original = root.attributes or {}
    trace_context = {k: root_payload[k] for k in ("trace_id", "span_id", "op", "status", "origin", "data")}
    if "parent_span_id" in root_payload:
        trace_context["parent_span_id"] = root_payload["parent_span_id"]
    if dsc is not None:
        # The name only for a routed request: what the outgoing calls' baggage carried (``transaction_name``).
        name = root_payload["description"] if "http.route" in attrs else None
        sampled = head_sampled(root)  # a trace kept for an error or slowness keeps the head's "no"
        trace_context["dynamic_sampling_context"] = dsc.for_trace(root.context.trace_id, sampled, name, incoming)
    contexts: dict[str, Any] = {"trace": trace_context}
    spec_request = _spec_request_context(original)
    if spec_request:
        contexts["request"] = spec_request
    code = original.get("http.response.status_code") or original.get("http.status_code")
    if isinstance(code, int):
        contexts["response"] = {"status_code": code}
    tags = {"service": service}
    for attr, tag in (
        ("gen_ai.request.model", "model"),
        ("gen_ai.provider.name", "provider"),
        ("gatewayz.user_impact", "user_impact"),
        ("http.response.status_code", "http.status_code"),
    ):
        if attr in attrs:
            tags[tag] = str(attrs[attr])
    user = {
        key: attrs[attr]
        for attr, key in (("user.id", "id"), ("user.email", "email"), ("gatewayz.user.plan", "plan"))
        if attr in attrs
    }
    event: dict[str, Any] = {
        "type": "transaction",
        "platform": "python",
        "transaction": root_payload["description"],
        "transaction_info": {"source": "route" if "http.route" in attrs else "custom"},
        "start_timestamp": root_payload["start_timestamp"],
        "timestamp": root_payload["timestamp"],
        "contexts": contexts,
        "spans": [_span_payload(child, send_pii) for child in children],
        "tags": tags,
    }
    if user:
        event["user"] = user
    request = request_from_span(original, send_pii) if root.kind == SpanKind.SERVER else None
    if request is not None:
        event["request"] = request
    return event


# Sends one finished local trace (clean root, clean children, the caller's frozen DSC) to Sentry.
TraceSend = Callable[[ReadableSpan, list[ReadableSpan], "FrozenDsc | None"], object]


class TransactionSender:
    """A local trace as one transaction event in one envelope (sentry-sdk 2.x, self-hosted Sentry, Spotlight)."""

    def __init__(
        self, service: str, envelopes: TransactionEnvelopes, dsc: DscSource | None = None, send_pii: bool = False
    ) -> None:
        self._service = service
        self._envelopes = envelopes
        self._dsc = dsc
        self._send_pii = send_pii

    def __call__(self, root: ReadableSpan, children: list[ReadableSpan], incoming: FrozenDsc | None) -> str:
        event = transaction_event(root, children, self._service, self._dsc, incoming, self._send_pii)
        return self._envelopes.send(event)


class SentryTransactionProcessor(SpanProcessor):
    """Groups each local root's children and hands finished, cleaned trees to a sender thread."""

    def __init__(self, shutdown_timeout: float, drops: DropCounter, clean: CleanSpans, send: TraceSend) -> None:
        self._clean = clean
        self._send = send
        self._incoming: dict[int, FrozenDsc] = {}
        self._shutdown_timeout = shutdown_timeout
        self._drops = drops
        self._lock = threading.Lock()
        self._root_of: dict[int, int] = {}
        self._children: dict[int, list[ReadableSpan]] = {}
        self._queue: queue.Queue[tuple[ReadableSpan, list[ReadableSpan], FrozenDsc | None] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._sender = OwnThread(self._run, "otel_gatewayz-transactions")

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        parent = trace.get_current_span(parent_context).get_span_context()
        span_id = span.context.span_id
        with self._lock:
            if not parent.is_valid or parent.is_remote:
                if len(self._children) < MAX_OPEN_ROOTS:
                    self._root_of[span_id] = span_id
                    self._children[span_id] = []
                    frozen = incoming_dsc(parent_context) if parent.is_valid else None
                    if frozen is not None:
                        self._incoming[span_id] = frozen
                return
            root = self._root_of.get(parent.span_id)
            if root is not None:
                self._root_of[span_id] = root

    def on_end(self, span: ReadableSpan) -> None:
        span_id = span.context.span_id
        with self._lock:
            root = self._root_of.pop(span_id, None)
            if root is None:
                return
            if root != span_id:
                siblings = self._children.get(root)
                if siblings is not None and len(siblings) < MAX_CHILDREN:
                    siblings.append(span)
                return
            children = self._children.pop(span_id, [])
            frozen = self._incoming.pop(span_id, None)
        self._sender.ensure()
        try:
            self._queue.put_nowait((span, children, frozen))
        except queue.Full:
            self._drops.count("sentry_transaction", "queue_full", what="Sentry transaction queue is full, dropping")

    def _run(self) -> None:
        send, clean = self._send, self._clean
        stop = False
        while not stop:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < QUEUE_SIZE:
                    batch.append(self._queue.get_nowait())
            for item in batch:
                try:
                    if item is None:  # ``close``: what was queued before it was sent
                        stop = True
                    else:
                        root, children, frozen = item
                        send(clean(root), [clean(child) for child in children], frozen)
                except Exception:  # noqa: BLE001 - a bad span must not stop the sender; never send it unscrubbed
                    log_once(
                        "tx-build", logging.ERROR, "otel_gatewayz: building a Sentry transaction failed", exc_info=True
                    )
                    self._drops.count("sentry_transaction", "build_failed", what="Sentry transaction not built")
                finally:
                    self._queue.task_done()
            if stop:
                return
            # Wake up at most BATCH_INTERVAL apart under load: one hand-off per batch, not per request.
            time.sleep(BATCH_INTERVAL)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if not self._sender.running():
            return True
        return in_background("transaction flush", self._queue.join).wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        self.force_flush(int(self._shutdown_timeout * 1000))

    def close(self) -> None:
        """Send what is queued, then end the sender thread (an in-process fixture's processor ends with its test)."""
        if self._sender.running():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._sender.join(self._shutdown_timeout)
