"""Hooks handed to the FastAPI and httpx instrumentations.

The server hook opens the request's state for every request, sampled or not. The httpx
hooks gate trace-header injection by host, leave a provider breadcrumb (method, host,
status, duration; never the query string) and record provider latency metrics.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace

from ._context import current_state, new_breadcrumb, start_request_state
from ._genai import record_call, watch_stream
from ._log import contained
from ._propagation import outgoing_host


def server_request_hook(span: trace.Span, scope: MutableMapping[str, Any]) -> None:
    with contained("server request hook"):
        if scope.get("type") == "http":
            start_request_state(span, scope)


def _host_of(request: Any) -> tuple[str, str]:
    method = request.method.decode() if isinstance(request.method, bytes) else str(request.method)
    url = request.url
    host = getattr(url, "host", None)
    if isinstance(host, bytes):
        host = host.decode()
    if host is None and isinstance(url, tuple):  # httpx transport-level URL tuple
        host = url[1].decode() if isinstance(url[1], bytes) else str(url[1])
    port = getattr(url, "port", None)
    host_port = f"{host}:{port}" if port else str(host)
    return method, host_port


def _on_request(span: trace.Span, request: Any) -> None:
    with contained("http client request hook"):
        method, host_port = _host_of(request)
        outgoing_host.set(host_port.split(":")[0])
        state = current_state()
        if state is not None:
            category = "provider" if state.request.get("provider") else "http"
            state.pending_calls[id(request)] = (method, host_port, time.perf_counter(), category)


def _on_response(span: trace.Span, request: Any, response: Any) -> None:
    with contained("http client response hook"):
        outgoing_host.set(None)
        state = current_state()
        if state is None:
            return
        pending = state.pending_calls.pop(id(request), None)
        if pending is None:
            return
        method, host_port, started, category = pending
        duration = time.perf_counter() - started
        status = int(response.status_code) if hasattr(response, "status_code") else int(response[0])
        level = "error" if status >= 500 else "warning" if status >= 400 else "info"
        state.breadcrumbs.append(
            new_breadcrumb(
                f"{method} {host_port} {status}",
                category,
                level,
                {"method": method, "host": host_port, "status_code": status, "duration_ms": round(duration * 1000, 1)},
            )
        )
        if category == "provider":
            error_type = str(status) if status >= 400 else None
            stream = getattr(response, "stream", None)
            if not (
                state.request.get("stream") and stream is not None and watch_stream(stream, state, started, error_type)
            ):
                record_call(state, duration, error_type)


def request_hook(span: trace.Span, request: Any) -> None:
    _on_request(span, request)


def response_hook(span: trace.Span, request: Any, response: Any) -> None:
    _on_response(span, request, response)


async def async_request_hook(span: trace.Span, request: Any) -> None:
    _on_request(span, request)


async def async_response_hook(span: trace.Span, request: Any, response: Any) -> None:
    _on_response(span, request, response)


def fastapi_instrument_kwargs() -> dict[str, Any]:
    return {"server_request_hook": server_request_hook, "exclude_spans": ["receive", "send"]}


def httpx_instrument_kwargs() -> dict[str, Any]:
    return {
        "request_hook": request_hook,
        "response_hook": response_hook,
        "async_request_hook": async_request_hook,
        "async_response_hook": async_response_hook,
    }
