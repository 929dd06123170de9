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


def _transport_options(experiments: dict[str, object]) -> dict[str, object]:
    """What ``HttpTransport`` reads of the client options."""
    return {
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
        "_experiments": experiments,
    }


def test_sentry_transport_response_hook_and_queue():
    from sentry_sdk.transport import HttpTransport

    assert list(inspect.signature(HttpTransport._handle_response).parameters)[1:] == ["response", "envelope"]
    assert "on_dropped_event" in vars(HttpTransport) or hasattr(HttpTransport, "on_dropped_event")
    transport = HttpTransport(_transport_options({}))
    try:
        assert transport._worker._queue.qsize() == 0
    finally:
        transport.kill()


def test_sentry_transport_takes_our_gzip_level_from_its_experiments_option():
    """``client.py`` sets ``_experiments.transport_compression_level``; the SDK's default is gzip -9."""
    from sentry_sdk.transport import HttpTransport

    from otel_gatewayz._sentry.client import COMPRESSION_LEVEL

    transport = HttpTransport(_transport_options({"transport_compression_level": COMPRESSION_LEVEL}))
    try:
        assert (transport._compression_algo, transport._compression_level) == ("gzip", COMPRESSION_LEVEL)
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


def test_the_semantic_convention_table_the_test_fixture_sets_for_one_test():
    """``otel_gatewayz/_testing/conventions.py`` puts the distro's HTTP mode in the instrumentations' table."""
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability as stability,
    )
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )

    from otel_gatewayz._testing.conventions import http_conventions

    def http_mode() -> _StabilityMode:
        return stability._get_opentelemetry_stability_opt_in_mode(_OpenTelemetryStabilitySignalType.HTTP)

    before = http_mode()
    with http_conventions("http"):
        assert http_mode() is _StabilityMode.HTTP
    with http_conventions("http/dup,database"):
        assert http_mode() is _StabilityMode.HTTP_DUP
    assert http_mode() is before


def test_sentry_logging_integration_hands_event_records_to_the_handler_we_override():
    """DedupingLoggingIntegration skips recorded errors in the SDK's per-major record handler.

    2.x calls ``_handle_record``, 3.x ``_handle_event_record`` (from its patched ``callHandlers``):
    logged for real on the installed major, one error becomes an event and a recorded one does not.
    """
    import sentry_sdk
    from sentry_sdk.integrations import logging as sentry_logging

    from otel_gatewayz._errors.recorder import _mark
    from otel_gatewayz._sentry.sdk import STREAMS_SPANS, DedupingLoggingIntegration, ignore_logger_for_events
    from tests.unit.test_trace_routes import Recording

    handler = "_handle_event_record" if STREAMS_SPANS else "_handle_record"
    assert handler in vars(sentry_logging.LoggingIntegration)
    transport = Recording()
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        default_integrations=False,
        integrations=[DedupingLoggingIntegration()],
    )
    ignore_logger_for_events("guard.muted")  # 3.x's ``ignore_logger`` would only mute Sentry Logs
    try:
        logging.getLogger("guard.muted").error("Failed to detach context")
        log = logging.getLogger("guard.deduping")
        for recorded in (False, True):
            try:
                raise RuntimeError(f"recorded={recorded}")
            except RuntimeError as exc:
                if recorded:
                    _mark(exc, "e" * 32)
                log.error("failed", exc_info=True)
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
    payloads = transport.payloads()
    assert [p["exception"]["values"][-1]["value"] for p in payloads if "exception" in p] == ["recorded=False"]
    messages = [(p.get("logentry") or {}).get("message") for p in payloads]
    assert "Failed to detach context" not in messages and "failed" in messages


def test_uvicorn_access_lines_are_rendered_by_access_formatter_format_message():
    import inspect

    from uvicorn.logging import AccessFormatter

    assert "formatMessage" in vars(AccessFormatter)
    assert list(inspect.signature(AccessFormatter.formatMessage).parameters) == ["self", "record"]


def test_instruments_hand_measurements_to_the_providers_consumer_instance():
    """The measurement hook shadows ``consume_measurement`` on the provider's consumer instance."""
    import dataclasses

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.resources import Resource

    provider = MeterProvider(resource=Resource.create({"service.name": "guard"}))
    counter = provider.get_meter("guard").create_counter("made_before")
    seen: list[Measurement] = []
    provider._measurement_consumer.consume_measurement = seen.append  # type: ignore[method-assign]
    counter.add(2, {"a": "b"})
    provider.get_meter("guard").create_histogram("made_after").record(1.5)
    assert [(m.instrument.name, m.value, m.attributes) for m in seen] == [
        ("made_before", 2, {"a": "b"}),
        ("made_after", 1.5, None),
    ]
    assert dataclasses.is_dataclass(Measurement) and {f.name for f in dataclasses.fields(Measurement)} >= {
        "value",
        "instrument",
        "attributes",
    }
    assert dataclasses.replace(seen[0], attributes={"a": "c"}).attributes == {"a": "c"}
    assert provider._sdk_config.resource.attributes["service.name"] == "guard"


def test_histogram_boundaries_are_the_instruments_advice_or_the_sdk_default():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_gatewayz._metrics.measurements import histogram_boundaries

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("guard")
    advised = meter.create_histogram("advised", explicit_bucket_boundaries_advisory=[0.5, 2.0])
    default = meter.create_histogram("default")
    advised.record(1)
    default.record(1)
    data = reader.get_metrics_data()
    assert data is not None
    exported = {
        m.name: tuple(m.data.data_points[0].explicit_bounds) for m in data.resource_metrics[0].scope_metrics[0].metrics
    }  # type: ignore[union-attr]
    assert exported == {
        "advised": tuple(histogram_boundaries(advised)),
        "default": tuple(histogram_boundaries(default)),
    }
    assert exported["advised"] == (0.5, 2.0)


def test_prometheus_exporter_translation_runs_on_its_own():
    """A dead process's journal is translated by a standalone ``_CustomCollector`` (no callback, no target_info)."""
    from opentelemetry.exporter.prometheus import _CustomCollector
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[reader]).get_meter("guard").create_counter("c").add(3)
    data = reader.get_metrics_data()
    assert data is not None
    collector = _CustomCollector(disable_target_info=True, resource_attribute_filter=lambda key: False)
    collector.add_metrics_data(data)
    [family] = list(collector.collect())
    assert (family.name, family.type, [s.value for s in family.samples]) == ("c", "counter", [3])


def test_genai_prices_usage_keeps_its_reported_counts_as_attributes():
    """``_spend`` reads a ``Usage``'s counts from its ``__dict__`` (``reported_value`` validates them all per key)."""
    from genai_prices import Usage

    from otel_gatewayz._spend.usage import reported

    usage = Usage(input_tokens=13, output_tokens=5, cache_read_tokens=0)
    assert dict(reported(usage)) == {"input_tokens": 13, "output_tokens": 5, "cache_read_tokens": 0}
    assert all(usage.reported_value(key) == value for key, value in reported(usage).items())


def test_our_exception_event_on_unsampled_spans_matches_the_sdks_own():
    """``_export/recording.py`` rebuilds ``Span.record_exception``'s event: same attributes, same frames."""
    import traceback

    from opentelemetry.sdk.trace import Span, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from otel_gatewayz._export.recording import plain_stacktrace

    try:
        try:
            {}["missing"]
        except KeyError:
            raise ValueError("outer") from None
    except ValueError as exc:
        error = exc
    span = TracerProvider(sampler=ALWAYS_ON).get_tracer("t").start_span("s")
    Span.record_exception(span, error, {"extra": 1}, None, True)  # sampled: the SDK's own method, wrapped or not
    span.end()
    [sdk_event] = span.events
    assert set(sdk_event.attributes) == {
        "exception.type",
        "exception.message",
        "exception.stacktrace",
        "exception.escaped",
        "extra",
    }
    assert sdk_event.attributes["exception.escaped"] == "True"
    sdk_lines = [
        line for line in sdk_event.attributes["exception.stacktrace"].splitlines() if set(line.strip()) - set("^~")
    ]
    assert (
        sdk_lines
        == plain_stacktrace(error).splitlines()
        == [line for line in "".join(traceback.format_exception(error)).splitlines() if set(line.strip()) - set("^~")]
    )
