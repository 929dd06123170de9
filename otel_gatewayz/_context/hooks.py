"""Hooks handed to the FastAPI and HTTP client instrumentations (the only code they call back into).

The server hook opens the request's state for every request, sampled or not. Every HTTP
client instrumentation (httpx and httpx2, requests, urllib, urllib3, aiohttp-client) gets the
same client hooks: they name the destination host for the trace-header gate (the only way a
header is ever injected), leave a provider breadcrumb (method, host, status, duration; never
the query string) and record provider latency metrics, unless an official GenAI
instrumentation already measures the same SDK call. On httpx and httpx2, a provider's answer
is read for its token usage as its body passes (every call, SDK or plain relay), and counted
and priced when the body ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import SpanContext

from .._metrics.bodies import watch_body
from .._metrics.drops import DropCounter
from .._metrics.genai import GenAiMetrics
from .._safety.log import contained
from .._spend.accounting import ProviderCall, Spend, operation_of
from .._spend.usage import UnsupportedEncoding, UsageReader, usage_reader
from .processor import is_instrumentation_span
from .propagation import allow_next_injection
from .state import PendingCall, RequestState, current_state, new_breadcrumb, start_request_state

# Entry-point names (group ``opentelemetry_instrumentor``) of the HTTP client instrumentations
# we hook; every other installed instrumentation must be listed in ``NOT_HTTP_CLIENTS`` (a test
# fails otherwise), so a new client instrumentation never runs without our gates.
HTTP_CLIENT_INSTRUMENTATIONS = ("httpx", "httpx2", "requests", "urllib", "urllib3", "aiohttp-client")


def server_request_hook(span: trace.Span, scope: MutableMapping[str, Any]) -> None:
    with contained("server request hook"):
        if scope.get("type") == "http":
            start_request_state(span, scope)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _host_port_of_url(url: Any) -> tuple[str, int | None] | None:
    """``(host, port)`` of an httpx URL, an httpx transport URL tuple, a yarl URL or a URL string."""
    if isinstance(url, tuple):  # httpx transport-level (scheme, host, port, path)
        host, port = _text(url[1]), url[2]
    elif isinstance(url, (str, bytes)):
        parts = urlsplit(_text(url))
        host, port = parts.hostname or "", parts.port
    else:
        host, port = _text(getattr(url, "host", "") or ""), getattr(url, "port", None)
    return (host, port) if host else None


def _path_of_url(url: Any) -> str:
    if isinstance(url, tuple):
        return _text(url[3]).split("?", 1)[0]
    if isinstance(url, (str, bytes)):
        return urlsplit(_text(url)).path
    return _text(getattr(url, "path", "") or "")


def _header(headers: Any, name: str) -> str:
    """One header of an httpx ``Headers`` or of a transport-level list of byte pairs ('' if absent)."""
    if headers is None:
        return ""
    if hasattr(headers, "get"):
        return _text(headers.get(name) or "")
    wanted = name.encode()
    for key, value in headers:
        if (key if isinstance(key, bytes) else str(key).encode()).lower() == wanted:
            return _text(value)
    return ""


def _status_of(response: Any) -> int:
    for name in ("status_code", "status", "code"):
        value = getattr(response, name, None)
        if isinstance(value, int):
            return value
    return int(response[0])  # httpx ResponseInfo / transport tuple


def _genai_parent(span: trace.Span, state: Any) -> Span | None:
    """The open GenAI operation span this (sampled) client span runs in, if any."""
    parent = getattr(span, "parent", None)
    return state.genai_spans.get(parent.span_id) if parent is not None else None


def _sdk_of(headers: Any) -> str | None:
    """``openai`` or ``anthropic`` for a request their SDKs send (by its User-Agent), sampled or not."""
    try:
        agent = _text(headers.get("user-agent") or headers.get("User-Agent") or "").lower()
    except Exception:  # noqa: BLE001 - headers we cannot read: not an SDK we know
        return None
    for sdk in ("openai", "anthropic"):
        if agent.startswith((f"{sdk}/", f"async{sdk}/")):
            return sdk
    return None


class ClientHooks:
    """The HTTP client instrumentations' hooks, recording provider calls into ``genai``."""

    def __init__(self, genai: GenAiMetrics, spend: Spend | None = None, drops: DropCounter | None = None) -> None:
        self._genai = genai
        self._spend = spend
        self._drops = drops
        self._measured_sdks: set[str] = set()

    def measured_by_genai_instrumentation(self, sdk: str) -> None:
        """An official GenAI instrumentation measures ``sdk``'s calls: leave their metrics to it."""
        self._measured_sdks.add(sdk)

    # -- the core, shared by every client ----------------------------------------------------

    def _start(
        self,
        span: trace.Span,
        key: int,
        method: str,
        destination: tuple[str, int | None] | None,
        headers: Any = None,
        path: str | None = None,
    ) -> None:
        if destination is None:
            return  # unknown destination: no permit, so no trace header
        host, port = destination
        allow_next_injection(host)
        state = current_state()
        if state is not None:
            category = "provider" if state.request.get("provider") else "http"
            measured_sdks = self._measured_sdks  # empty unless a GenAI instrumentation is on: no header read
            genai_parent = _genai_parent(span, state)
            measured = (
                category == "provider"
                and (genai_parent is None or not is_instrumentation_span(genai_parent))
                and (headers is None or not measured_sdks or _sdk_of(headers) not in measured_sdks)
            )
            host_port = f"{host}:{port}" if port else host
            state.pending_calls[key] = PendingCall(method, host_port, time.perf_counter(), category, measured)
            if category == "provider" and path is not None and self._spend is not None:
                state.provider_calls[key] = _provider_call(span, state, path, genai_parent)

    def _read_usage(self, call: ProviderCall, headers: Any, stream: Any) -> None:
        """Read the answer's usage as its body passes; count it when the body ends."""
        spend, drops = self._spend, self._drops
        if spend is None or stream is None:
            return
        try:
            reader = usage_reader(_header(headers, "content-type"), _header(headers, "content-encoding"))
        except UnsupportedEncoding as exc:
            if drops is not None:
                drops.count(
                    "spend", "unsupported_encoding", what="a provider answer's usage was not read", detail=str(exc)
                )
            return
        if reader is None:
            return
        watch = watch_body(stream)
        if watch is None:
            return
        watch.on_chunk(reader.feed)
        watch.on_end(lambda: _counted(spend, drops, call, reader))

    def _finish(self, key: int, status: int, stream: Any = None, headers: Any = None) -> None:
        state = current_state()
        if state is None:
            return
        provider_call = state.provider_calls.pop(key, None)
        call = state.pending_calls.pop(key, None)
        if call is None:
            return
        if provider_call is not None and status < 400:
            self._read_usage(provider_call, headers, stream)
        duration = time.perf_counter() - call.started
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        state.add_breadcrumb(
            new_breadcrumb(
                f"{call.method} {call.host} {status}",
                call.category,
                level,
                {
                    "method": call.method,
                    "host": call.host,
                    "status_code": status,
                    "duration_ms": round(duration * 1000, 1),
                },
            )
        )
        if call.category == "provider" and call.measured:
            error_type = str(status) if status >= 400 else None
            watch = watch_body(stream) if state.request.get("stream") and stream is not None else None
            if watch is not None:
                self._genai.watch_stream(watch, state.request, call.started, error_type)
            else:
                self._genai.record_call(state.request, duration, error_type)

    def fail_pending(self, state: RequestState | None, error_type: str) -> None:
        """The request failed with calls still awaiting a response: a breadcrumb each, a failed provider call.

        The recorder calls this when it records an error; the bookkeeping stays the hooks' own.
        """
        if state is None or not state.pending_calls:
            return
        now = time.perf_counter()
        for key, call in list(state.pending_calls.items()):
            state.pending_calls.pop(key, None)
            if call.category == "provider" and call.measured:
                self._genai.record_call(state.request, now - call.started, error_type)
            state.add_breadcrumb(
                new_breadcrumb(
                    f"{call.method} {call.host} failed",
                    call.category,
                    "error",
                    {"method": call.method, "host": call.host, "duration_ms": round((now - call.started) * 1000, 1)},
                )
            )

    # -- httpx and httpx2 ------------------------------------------------------------------

    def request_hook(self, span: trace.Span, request: Any) -> None:
        with contained("http client request hook"):
            headers = getattr(request, "headers", None)
            url = request.url
            self._start(span, id(request), _text(request.method), _host_port_of_url(url), headers, _path_of_url(url))

    def response_hook(self, span: trace.Span, request: Any, response: Any) -> None:
        with contained("http client response hook"):
            stream, headers = getattr(response, "stream", None), getattr(response, "headers", None)
            self._finish(id(request), _status_of(response), stream, headers)

    async def async_request_hook(self, span: trace.Span, request: Any) -> None:
        self.request_hook(span, request)

    async def async_response_hook(self, span: trace.Span, request: Any, response: Any) -> None:
        self.response_hook(span, request, response)

    def httpx_kwargs(self) -> dict[str, Any]:
        return {
            "request_hook": self.request_hook,
            "response_hook": self.response_hook,
            "async_request_hook": self.async_request_hook,
            "async_response_hook": self.async_response_hook,
        }

    # -- requests and urllib: (span, request) / (span, request, response) ------------------

    def _url_request_hook(self, span: trace.Span, request: Any) -> None:
        with contained("http client request hook"):
            url = getattr(request, "full_url", None) or getattr(request, "url", None)
            method = request.get_method() if hasattr(request, "get_method") else request.method
            self._start(span, id(request), _text(method), _host_port_of_url(url))

    def _url_response_hook(self, span: trace.Span, request: Any, response: Any) -> None:
        with contained("http client response hook"):
            self._finish(id(request), _status_of(response))

    def url_kwargs(self) -> dict[str, Any]:
        return {"request_hook": self._url_request_hook, "response_hook": self._url_response_hook}

    # -- urllib3: (span, pool, request_info) / (span, pool, response) ----------------------

    def _urllib3_request_hook(self, span: trace.Span, pool: Any, request_info: Any) -> None:
        with contained("http client request hook"):
            url = request_info.url
            destination = _host_port_of_url(url) if "://" in str(url) else None
            if destination is None and getattr(pool, "host", None):
                destination = (str(pool.host), getattr(pool, "port", None))
            self._start(span, id(span), _text(request_info.method), destination)

    def _urllib3_response_hook(self, span: trace.Span, pool: Any, response: Any) -> None:
        with contained("http client response hook"):
            self._finish(id(span), _status_of(response))

    def urllib3_kwargs(self) -> dict[str, Any]:
        return {"request_hook": self._urllib3_request_hook, "response_hook": self._urllib3_response_hook}

    # -- aiohttp-client: (span, params), params of start / end / exception ------------------

    def _aiohttp_request_hook(self, span: trace.Span, params: Any) -> None:
        with contained("http client request hook"):
            self._start(span, id(span), _text(params.method), _host_port_of_url(str(params.url)))

    def _aiohttp_response_hook(self, span: trace.Span, params: Any) -> None:
        with contained("http client response hook"):
            response = getattr(params, "response", None)
            if response is not None:  # an exception leaves the call pending: the recorder closes it
                self._finish(id(span), _status_of(response))

    def aiohttp_kwargs(self) -> dict[str, Any]:
        return {"request_hook": self._aiohttp_request_hook, "response_hook": self._aiohttp_response_hook}

    def kwargs_for(self, instrumentation: str) -> dict[str, Any] | None:
        """The hook arguments for an HTTP client instrumentation's entry point, None for others."""
        builders: dict[str, Callable[[], dict[str, Any]]] = {
            "httpx": self.httpx_kwargs,
            "httpx2": self.httpx_kwargs,
            "requests": self.url_kwargs,
            "urllib": self.url_kwargs,
            "urllib3": self.urllib3_kwargs,
            "aiohttp-client": self.aiohttp_kwargs,
        }
        builder = builders.get(instrumentation)
        return builder() if builder is not None else None


def _provider_call(span: trace.Span, state: RequestState, path: str, genai_span: Span | None) -> ProviderCall:
    parent = getattr(span, "parent", None)  # an unsampled client span has none: its own context, unsampled
    if not isinstance(parent, SpanContext) or not parent.is_valid:
        parent = span.get_span_context() if span.get_span_context().is_valid else None
    genai_totals = None
    if genai_span is not None and parent is not None:
        genai_totals = state.genai_totals(parent.span_id)
    return ProviderCall(
        provider=state.request.get("provider"),
        model=state.request.get("model"),
        plan=state.user.get("plan"),
        operation=operation_of(path),
        started_ns=time.time_ns(),
        parent=parent,
        genai_span=genai_span,
        genai_totals=genai_totals,
        root_span=state.root_span,
        request_totals=state.spend,
    )


def _counted(spend: Spend, drops: DropCounter | None, call: ProviderCall, reader: UsageReader) -> None:
    """At the body's end: the usage it reported, counted and priced once (a reading problem is a counted drop)."""
    if reader.problem is not None and drops is not None:
        drops.count("spend", reader.problem, what="a provider answer's usage was not read")
    answered = reader.result()
    if answered is not None:
        spend.record(call, answered)


def fastapi_instrument_kwargs() -> dict[str, Any]:
    return {"server_request_hook": server_request_hook, "exclude_spans": ["receive", "send"]}
