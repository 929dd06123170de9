"""Hooks handed to the FastAPI and HTTP client instrumentations (the only code they call back into).

The server hook opens the request's state for every request, sampled or not. The httpx
hooks gate trace-header injection by host, leave a provider breadcrumb (method, host,
status, duration; never the query string) and record provider latency metrics.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace

from .._metrics.genai import GenAiMetrics
from .._safety.log import contained
from .propagation import outgoing_host
from .state import current_state, new_breadcrumb, start_request_state


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


class ClientHooks:
    """The HTTP client instrumentation's hooks, recording provider calls into ``genai``."""

    def __init__(self, genai: GenAiMetrics) -> None:
        self._genai = genai

    def request_hook(self, span: trace.Span, request: Any) -> None:
        with contained("http client request hook"):
            method, host_port = _host_of(request)
            outgoing_host.set(host_port.split(":")[0])
            state = current_state()
            if state is not None:
                category = "provider" if state.request.get("provider") else "http"
                state.pending_calls[id(request)] = (method, host_port, time.perf_counter(), category)

    def response_hook(self, span: trace.Span, request: Any, response: Any) -> None:
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
                    {
                        "method": method,
                        "host": host_port,
                        "status_code": status,
                        "duration_ms": round(duration * 1000, 1),
                    },
                )
            )
            if category == "provider":
                error_type = str(status) if status >= 400 else None
                stream = getattr(response, "stream", None)
                if not (
                    state.request.get("stream")
                    and stream is not None
                    and self._genai.watch_stream(stream, state.request, started, error_type)
                ):
                    self._genai.record_call(state.request, duration, error_type)

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


def fastapi_instrument_kwargs() -> dict[str, Any]:
    return {"server_request_hook": server_request_hook, "exclude_spans": ["receive", "send"]}
