"""Guards for the SDK and library internals the distro still relies on (README, "Architecture").

Each internal has no public equivalent today. If an upgrade moves one, the matching test fails
here by name instead of a feature silently stopping (a counter that never counts again).
"""

from __future__ import annotations

import inspect
import logging
import socket

import httpx
import pytest


def test_sdk_configurator_base_and_the_arguments_we_hand_it():
    from opentelemetry.sdk import _configuration

    assert issubclass(_configuration._OTelSDKConfigurator, _configuration._BaseConfigurator)
    assert "_configure" in vars(_configuration._OTelSDKConfigurator)
    accepted = set(inspect.signature(_configuration._initialize_components).parameters)
    ours = {
        "resource_attributes",
        "sampler",
        "span_processors",
        "export_span_processor",
        "log_record_processors",
        "exporter_args_map",
        "auto_instrumentation_version",
    }
    assert ours <= accepted, ours - accepted


def test_batch_processor_queue_and_bound():
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    processor = BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=7, max_export_batch_size=7)
    try:
        inner = processor._batch_processor
        assert len(inner._queue) == 0
        assert inner._max_queue_size == 7
        assert "timeout_millis" in inspect.signature(inner.shutdown).parameters
    finally:
        processor.shutdown()


def test_otlp_exporter_failure_lines_still_name_the_reason():
    """An OTLP export to a refused port is read as ``unreachable`` from what the exporter logs."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider

    from otel_gatewayz._export.reasons import CAPTURE, exporter_loggers, reason_of

    with socket.socket() as held:  # bound, not listening: connections are refused
        held.bind(("127.0.0.1", 0))
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{held.getsockname()[1]}/v1/traces", timeout=2)
        for exporter_logger in exporter_loggers(exporter):
            exporter_logger.addFilter(CAPTURE)
        span = TracerProvider().get_tracer("guard").start_span("x")
        span.end()
        with CAPTURE.capturing() as records:
            exporter.export([span])  # type: ignore[list-item]
        exporter.shutdown()
    assert records, "the OTLP exporter logged nothing about a failed export"
    assert reason_of(records)[0] == "unreachable"


def test_resource_attributes_can_be_renewed_after_fork():
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.instance.id": "before"})
    assert isinstance(resource.attributes._dict, dict)  # type: ignore[attr-defined]
    assert resource.attributes._dict["service.instance.id"] == "before"  # type: ignore[attr-defined]


def test_prometheus_reader_collector():
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY

    reader = PrometheusMetricReader()
    try:
        assert callable(reader._collector.collect)
        assert hasattr(reader._collector, "_target_info")
    finally:
        REGISTRY.unregister(reader._collector)


def test_sentry_transport_response_hook_and_queue():
    from sentry_sdk.transport import HttpTransport

    assert list(inspect.signature(HttpTransport._handle_response).parameters)[1:] == ["response", "envelope"]
    assert "on_dropped_event" in vars(HttpTransport) or hasattr(HttpTransport, "on_dropped_event")
    transport = HttpTransport(
        {
            "dsn": "https://key@127.0.0.1:9/1",
            "transport_queue_size": 3,
            "http_proxy": None,
            "https_proxy": None,
            "ca_certs": None,
            "cert_file": None,
            "key_file": None,
            "proxy_headers": None,
            "keep_alive": False,
            "socket_options": None,
            "send_client_reports": False,
            "_experiments": {},
        }
    )
    try:
        assert transport._worker._queue.qsize() == 0
    finally:
        transport.kill()


def _stream_class_swap_works(module: object) -> None:
    chunks = [b"a", b"b"]
    seen: list[str] = []

    def handler(request: object) -> object:
        return module.Response(200, content=iter(chunks))  # type: ignore[attr-defined]

    client = module.Client(transport=module.MockTransport(handler))  # type: ignore[attr-defined]
    with client.stream("GET", "http://provider.test/x") as response:
        stream = response.stream
        base = type(stream)

        class Timed(base):  # type: ignore[misc, valid-type]
            def __iter__(self):  # type: ignore[no-untyped-def]
                seen.append("first")
                yield from super().__iter__()

        stream.__class__ = Timed
        assert b"".join(response.iter_bytes()) == b"ab"
    assert seen == ["first"]


def test_httpx_response_stream_class_can_be_swapped():
    _stream_class_swap_works(httpx)


def test_httpx2_response_stream_class_can_be_swapped():
    httpx2 = pytest.importorskip("httpx2")
    _stream_class_swap_works(httpx2)


def test_starlette_builds_its_middleware_stack_where_we_hook_in():
    from fastapi import FastAPI
    from starlette.applications import Starlette

    assert "build_middleware_stack" in vars(Starlette)
    app = FastAPI()
    assert isinstance(app.exception_handlers, dict)
    assert callable(app.router.lifespan_context)


def test_span_processor_ending_hook_exists():
    from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor

    assert hasattr(SpanProcessor, "_on_ending")
    assert "_on_ending" in vars(SynchronousMultiSpanProcessor)


def test_log_records_carry_exc_text():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, None)
    assert record.exc_text is None  # our record subclass replaces this attribute with a property


def test_old_convention_server_metric_attribute_lists():
    from opentelemetry.instrumentation import _semconv
    from opentelemetry.instrumentation.asgi import _server_duration_attrs_old as asgi_list

    from otel_gatewayz._metrics.bounded_http import CLIENT_CHOSEN, drop_client_chosen_labels

    assert asgi_list is _semconv._server_duration_attrs_old  # the middleware reads this very list
    drop_client_chosen_labels()
    for allowed in (_semconv._server_duration_attrs_old, _semconv._server_active_requests_count_attrs_old):
        assert not set(CLIENT_CHOSEN) & set(allowed)
        assert "http.method" in allowed  # the bounded ones stay


def test_sentry_logging_integration_still_routes_records_through_handle_record():
    """DedupingLoggingIntegration skips recorded errors in ``_handle_record`` (called by the SDK's patched logger)."""
    import inspect

    from sentry_sdk.integrations import logging as sentry_logging

    assert "_handle_record" in vars(sentry_logging.LoggingIntegration)
    assert "_handle_record(record)" in inspect.getsource(sentry_logging.LoggingIntegration.setup_once)


def test_uvicorn_access_lines_are_rendered_by_access_formatter_format_message():
    import inspect

    from uvicorn.logging import AccessFormatter

    assert "formatMessage" in vars(AccessFormatter)
    assert list(inspect.signature(AccessFormatter.formatMessage).parameters) == ["self", "record"]
