"""Every HTTP client instrumentation gets our hooks, and trace headers fail closed."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, ClassVar

import httpx
import pytest
import requests
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import TraceState

from otel_gatewayz._context.hooks import HTTP_CLIENT_INSTRUMENTATIONS, ClientHooks
from otel_gatewayz._context.propagation import allow_next_injection, build_propagator
from otel_gatewayz._context.state import start_request_state
from otel_gatewayz._distro import GatewayzDistro, instrumentor_kwargs
from otel_gatewayz._metrics.genai import GenAiMetrics
from otel_gatewayz._metrics.instruments import Instruments
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz.testing import in_process

TRACE_HEADERS = ("traceparent", "tracestate", "sentry-trace", "baggage")
# Installed instrumentations that are not HTTP clients (servers, SDKs, the runtime); any other
# installed one must get our client hooks.
NOT_HTTP_CLIENTS = {
    "asgi",
    "asyncio",
    "fastapi",
    "logging",
    "starlette",
    "sqlite3",
    "system_metrics",
    "threading",
    "wsgi",
    "openai",
    "anthropic",
}


def test_every_installed_http_client_instrumentation_is_loaded_with_our_hooks():
    installed = {ep.name for ep in entry_points(group="opentelemetry_instrumentor")}
    assert {"httpx", "httpx2"} <= installed  # both entry points of the httpx instrumentation
    for name in installed - NOT_HTTP_CLIENTS:
        kwargs = instrumentor_kwargs(name)
        assert kwargs is not None and callable(kwargs.get("request_hook")), f"{name} would run without our hooks"
        assert callable(kwargs.get("response_hook")), name
    for name in HTTP_CLIENT_INSTRUMENTATIONS:  # also those not installed here
        assert instrumentor_kwargs(name) is not None, name


def test_the_distro_hands_the_hooks_to_the_instrumentor(monkeypatch: pytest.MonkeyPatch):
    received: dict[str, dict[str, Any]] = {}

    class FakeInstrumentor:
        def __init__(self, name: str) -> None:
            self.name = name

        def instrument(self, **kwargs: Any) -> None:
            received[self.name] = kwargs

    class FakeEntryPoint:
        def __init__(self, name: str) -> None:
            self.name = name

        def load(self) -> Any:
            return lambda: FakeInstrumentor(self.name)

    distro = GatewayzDistro()
    for name in ("httpx", "httpx2", "requests", "urllib3", "aiohttp-client"):
        distro.load_instrumentor(FakeEntryPoint(name), skip_dep_check=True)
    assert received["httpx2"]["async_request_hook"].__name__ == "async_request_hook"
    assert received["httpx"]["request_hook"].__self__ is received["httpx2"]["request_hook"].__self__
    assert received["requests"]["request_hook"].__name__ == "_url_request_hook"
    assert received["urllib3"]["request_hook"].__name__ == "_urllib3_request_hook"
    assert received["aiohttp-client"]["response_hook"].__name__ == "_aiohttp_response_hook"


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def hooks() -> ClientHooks:
    scrubber = Scrubber((), ())
    return ClientHooks(GenAiMetrics(Instruments(NoOpMeterProvider().get_meter("t")), scrubber))


@pytest.fixture
def gated(request: pytest.FixtureRequest) -> Iterator[TracerProvider]:
    """Our propagator as the global one, allowing ``localhost`` only."""
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(build_propagator([r"localhost"]))
    yield TracerProvider()
    propagate.set_global_textmap(previous)


def _in_trace(provider: TracerProvider) -> Any:
    """A sampled span with a tracestate and baggage, so every trace header has something to carry."""
    span = provider.get_tracer("t").start_span("parent")
    ctx = trace.set_span_in_context(span)
    parent = span.get_span_context()
    state = trace.SpanContext(parent.trace_id, parent.span_id, False, parent.trace_flags, TraceState([("vendor", "x")]))
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(state), ctx)
    return baggage.set_baggage("tenant", "t1", ctx)


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_real_clients_send_every_trace_header_to_allowed_hosts_only(client, hooks, gated, upstream):
    if client == "requests":
        from opentelemetry.instrumentation.requests import RequestsInstrumentor as Instrumentor
    else:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor as Instrumentor
    instrumentor = Instrumentor()
    instrumentor.instrument(tracer_provider=gated, **(hooks.kwargs_for(client) or {}))
    try:
        token = context.attach(_in_trace(gated))
        state = start_request_state(trace.get_current_span())
        state.request["provider"] = "openai"
        port = upstream.split(":")[1]
        try:
            for host in ("127.0.0.1", "localhost"):  # 127.0.0.1 is not allowed, localhost is
                url = f"http://{host}:{port}/v1?key=secret"
                response = requests.get(url, timeout=5) if client == "requests" else httpx.get(url)
                assert response.status_code == 200
        finally:
            context.detach(token)
    finally:
        instrumentor.uninstrument()
    refused, allowed = _Recorder.seen
    assert not set(TRACE_HEADERS) & set(refused), refused
    assert set(TRACE_HEADERS) <= set(allowed), allowed
    crumbs = [crumb for crumb in state.breadcrumbs if crumb["category"] == "provider"]
    assert [crumb["data"]["host"] for crumb in crumbs] == [f"127.0.0.1:{port}", f"localhost:{port}"]
    assert all("secret" not in str(crumb) for crumb in crumbs)


def test_unknown_destination_or_an_sdk_injecting_itself_gets_nothing(gated):
    token = context.attach(_in_trace(gated))
    try:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # as anthropic 2.x does, with no client hook naming the host
        assert carrier == {}
        allow_next_injection("localhost")
        propagate.inject(carrier)
        assert set(TRACE_HEADERS) <= set(carrier)
        again: dict[str, str] = {}
        propagate.inject(again)  # the permit was for one request: a stale host never leaks
        assert again == {}
    finally:
        context.detach(token)


def test_a_failing_hook_fails_closed(hooks, gated, upstream):
    """A request object our hook cannot read gets no permit, so no header."""
    token = context.attach(_in_trace(gated))
    try:
        hooks.request_hook(trace.get_current_span(), object())  # contained: no method, no url
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        assert carrier == {}
    finally:
        context.detach(token)


def test_urllib3_and_aiohttp_shaped_hooks_name_the_host(hooks, gated):
    class Info:
        method, url = "POST", "http://localhost:9/v1/chat/completions"

    class Params:
        method, url = "POST", "http://localhost:9/v1"

    token = context.attach(_in_trace(gated))
    try:
        for call in (
            lambda span: hooks.kwargs_for("urllib3")["request_hook"](span, None, Info()),  # type: ignore[index]
            lambda span: hooks.kwargs_for("aiohttp-client")["request_hook"](span, Params()),  # type: ignore[index]
        ):
            call(trace.get_current_span())
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            assert "traceparent" in carrier
    finally:
        context.detach(token)


def test_an_error_closes_the_calls_it_left_unanswered_through_the_hooks():
    """The hooks own the pending calls; the recorder hands them the error and they close each one."""
    with in_process() as gatewayz:
        hooks = gatewayz.runtime.client_hooks
        state = start_request_state(trace.INVALID_SPAN)
        state.request["provider"] = "openrouter"
        hooks.request_hook(trace.INVALID_SPAN, httpx.Request("POST", "https://openrouter.ai/api/v1/chat/completions"))
        [call] = state.pending_calls.values()
        assert (call.method, call.host, call.category, call.measured) == ("POST", "openrouter.ai", "provider", True)

        gatewayz.runtime.recorder.record(TimeoutError("read timed out"))

        assert state.pending_calls == {}
        crumb = state.breadcrumbs[-1]
        assert (crumb["message"], crumb["category"], crumb["level"]) == (
            "POST openrouter.ai failed",
            "provider",
            "error",
        )
        [duration] = gatewayz.metrics("gen_ai.client.operation.duration")
        assert duration.samples == 1 and duration.attributes["error.type"] == "TimeoutError"
