"""The distro in-process for one test: assembled on in-memory exporters, installed, then put back.

:func:`in_process` is the install step for tests. It assembles a runtime (``_setup/assembly.py``)
on providers of its own, makes it the one the public API reaches, and swaps in its propagator,
Sentry client and log handler; on the way out it ends what the assembly started and restores
each of those globals. The global tracer and meter providers are never set (OpenTelemetry allows
that once per process): apps are instrumented with this test's providers by
:meth:`Gatewayz.instrument`, and uninstrumented afterwards. So tests in one process never see
each other's spans, events or metric points.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sentry_sdk
from opentelemetry import propagate
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

from .._config.resource import resource_attributes
from .._config.settings import Settings, load_settings
from .._context.hooks import fastapi_instrument_kwargs
from .._context.sampling import GatewayzSampler
from .._context.state import isolated_state
from .._errors.handlers import install_handlers
from .._export.spans import ScrubbingSpanExporter
from .._metrics.genai_labels import GenAiLabels
from .._metrics.measurements import install_measurement_hook
from .._setup.assembly import Assembly, assemble
from .._setup.defaults import environment_defaults
from .._setup.runtime import Runtime, make_current
from .conventions import http_conventions
from .recording import MetricPoint, RecordingTransport, metric_points

if TYPE_CHECKING:
    from sentry_sdk.client import BaseClient
    from sentry_sdk.envelope import Envelope
    from starlette.testclient import TestClient

__all__ = ["DEFAULT_ENV", "Gatewayz", "in_process"]

App = TypeVar("App", bound=Starlette)
_HANDLERS_SET = "_otel_gatewayz_handlers"  # ``install_handlers``' mark on an app

# What a test runs on unless it says otherwise (the ``gatewayz_env`` fixture): a DSN that is
# never contacted (the transport records), every trace sampled.
DEFAULT_ENV: Mapping[str, str] = {
    "SENTRY_DSN": "https://public@sentry.invalid/1",
    "SENTRY_TRACES_SAMPLE_RATE": "1.0",
    "APP_ENV": "development",
    "OTEL_SERVICE_NAME": "gateway",
    "RELEASE_SHA": "0000000",
}


class Gatewayz:
    """One test's distro: instrument apps with it, then read what it recorded.

    Every reader first hands over what is still queued (error events are built on a worker
    thread, transactions on another), so a test reads right after its request.
    """

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self.settings = settings
        # The standard variables as the distro would leave them: the test's own, then our defaults.
        self.otel_defaults = {**environment_defaults(env), **env}
        resource = Resource.create(resource_attributes(settings, env))
        self.transport = RecordingTransport()
        self._span_exporter = InMemorySpanExporter()
        self._metric_reader = InMemoryMetricReader()
        self._log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        self.meter_provider = MeterProvider(metric_readers=[self._metric_reader], resource=resource)
        self.assembly: Assembly = assemble(
            settings, env=env, meter_provider=self.meter_provider, sentry_transport=self.transport
        )
        parts = self.assembly.runtime.parts
        install_measurement_hook(self.meter_provider, GenAiLabels(parts.instruments, parts.genai.label))
        # The process's sampler; with OTEL_TRACES_SAMPLER (which the SDK reads from os.environ), the ratio.
        sampler = self.assembly.sampler or GatewayzSampler(settings.traces_sample_rate)
        self.tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        for processor in self.assembly.span_processors:
            self.tracer_provider.add_span_processor(processor)
        exported = ScrubbingSpanExporter(self._span_exporter, parts.clean_spans, parts.instruments.drops)
        self.tracer_provider.add_span_processor(self.assembly.sender(SimpleSpanProcessor(exported)))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(self.assembly.log_processor)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self._log_exporter))
        self.sentry_client = self._own_client()
        self._undo: ExitStack = ExitStack()

    @property
    def runtime(self) -> Runtime:
        return self.assembly.runtime

    def _own_client(self) -> BaseClient | None:
        """This test's Sentry client, bound to the Sentry side: the process's options, no integrations.

        Imported here, not at the top: the plugin loads with every pytest run, and the Sentry
        side's modules only where the installed sentry-sdk can run them (then the assembly has one).
        """
        side = self.assembly.sentry
        if side is None:
            return None
        from .._setup.sentry_side import in_process_client

        client = in_process_client(self.settings, side.hooks, side.transport)
        side.slot.bind(client)
        return client

    # -- apps ------------------------------------------------------------------------------

    def instrument(self, app: App) -> App:
        """``app`` served as under ``opentelemetry-instrument``: server spans, our handlers, sessions.

        Undone when the test ends, so the next test instruments it with its own providers.
        """
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        if getattr(app, "_is_instrumented_by_opentelemetry", False):
            return app  # already ours for this test (or instrumented for good by the app itself)
        handlers = dict(app.exception_handlers)
        lifespan = app.router.lifespan_context
        runtime, sessions = self.runtime, self.assembly.sentry.sessions if self.assembly.sentry else None
        plain_build = type(app).build_middleware_stack

        def build_middleware_stack() -> Any:
            install_handlers(app, runtime.recorder, runtime.flush_errors)
            stack = plain_build(app)
            return sessions.wrap_stack(stack) if sessions is not None else stack

        app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
        FastAPIInstrumentor.instrument_app(
            app,  # type: ignore[arg-type]
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            excluded_urls=self.otel_defaults["OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"],
            **fastapi_instrument_kwargs(),
        )
        app.middleware_stack = None

        def undo() -> None:
            FastAPIInstrumentor.uninstrument_app(app)  # type: ignore[arg-type]
            vars(app).pop("build_middleware_stack", None)
            vars(app).pop(_HANDLERS_SET, None)
            app.exception_handlers.clear()
            app.exception_handlers.update(handlers)
            app.router.lifespan_context = lifespan
            app.middleware_stack = None

        self._undo.callback(undo)
        return app

    def client(self, app: Starlette, **kwargs: Any) -> TestClient:
        """A Starlette ``TestClient`` for ``app``, instrumented; a 500 comes back as a response, not raised."""
        from starlette.testclient import TestClient

        kwargs.setdefault("raise_server_exceptions", False)
        return TestClient(self.instrument(app), **kwargs)

    # -- what was recorded -------------------------------------------------------------------

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, scrubbed as the exporters get it, in the order they ended."""
        return list(self._span_exporter.get_finished_spans())

    def envelopes(self) -> list[Envelope]:
        """Every Sentry envelope, once what is queued was handed over."""
        self._hand_over()
        return self.transport.envelopes()

    def events(self) -> list[dict[str, Any]]:
        """The Sentry error (and message) events, as Sentry receives them: grouped, enriched, scrubbed."""
        self._hand_over()
        return self.transport.payloads("event")

    def transactions(self) -> list[dict[str, Any]]:
        """Sentry transactions (sentry-sdk 2.x); on 3.x traces go as span items: :meth:`sentry_spans`."""
        self._hand_over()
        return self.transport.payloads("transaction")

    def sentry_spans(self) -> list[dict[str, Any]]:
        """Sentry span v2 items (sentry-sdk 3.x, or ``GATEWAYZ_SENTRY_TRACES_VIA=spans``), flattened."""
        self._hand_over()
        return [span for payload in self.transport.payloads("span") for span in payload.get("items", [])]

    def sessions(self) -> list[dict[str, Any]]:
        """Release-health session aggregates counted so far (sent now)."""
        self._hand_over()
        sentry = self.assembly.sentry
        if sentry is not None and sentry.sessions is not None:
            sentry.sessions.flush()
        return self.transport.payloads("sessions")

    def metrics(self, name: str | None = None) -> list[MetricPoint]:
        """The metric points collected now, by their OpenTelemetry names (``gatewayz.errors``...)."""
        return metric_points(self._metric_reader, name)

    def logs(self) -> list[ReadableLogRecord]:
        """Log records of the test's loggers as OpenTelemetry exports them, scrubbed."""
        return list(self._log_exporter.get_finished_logs())

    def _hand_over(self) -> None:
        self.runtime.flush_errors()
        self.tracer_provider.force_flush()

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Undo the instrumentation, flush, and end what the assembly, the providers and the client started."""
        self._undo.close()
        self.tracer_provider.shutdown()
        self.assembly.close()
        if self.sentry_client is not None:
            self.sentry_client.close(timeout=self.settings.shutdown_timeout)
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


def _recordable(settings: Settings) -> Settings:
    """Settings whose Sentry traces the transport records: the OTLP route (a sentry.io DSN on 2.x) goes as transactions.

    That route has its own exporter, which would send to the DSN's project rather than to the test.
    Imported here, not at the top: the plugin loads with every pytest run, and the Sentry side's
    modules only where the installed sentry-sdk can run them.
    """
    from .._sentry.routes import ENVELOPE, OTLP, traces_route
    from .._sentry.sdk import STREAMS_SPANS

    if settings.sentry_enabled and traces_route(settings, STREAMS_SPANS) == OTLP:
        return dataclasses.replace(settings, sentry_traces_via=ENVELOPE)
    return settings


def _swap_sentry_client(gatewayz: Gatewayz, stack: ExitStack) -> None:
    """The test's client where ``capture_message`` and ``sentry_sdk`` calls find it, the previous one after."""
    client = gatewayz.sentry_client
    if client is None:
        return
    scope = sentry_sdk.get_global_scope()
    previous = scope.client
    scope.set_client(client)
    stack.callback(scope.set_client, previous)


@contextmanager
def in_process(env: Mapping[str, str] | None = None) -> Iterator[Gatewayz]:
    """The distro assembled from ``env`` (:data:`DEFAULT_ENV` when None) and installed until the block ends."""
    variables = dict(DEFAULT_ENV if env is None else env)
    gatewayz = Gatewayz(_recordable(load_settings(variables)), variables)
    with ExitStack() as stack:
        stack.enter_context(http_conventions(gatewayz.otel_defaults["OTEL_SEMCONV_STABILITY_OPT_IN"]))
        stack.callback(gatewayz.close)
        previous_runtime = make_current(gatewayz.runtime)
        stack.callback(make_current, previous_runtime)
        previous_propagator = propagate.get_global_textmap()
        propagate.set_global_textmap(gatewayz.assembly.propagator)
        stack.callback(propagate.set_global_textmap, previous_propagator)
        _swap_sentry_client(gatewayz, stack)
        with warnings.catch_warnings():  # the SDK's handler is deprecated for the logging instrumentation's
            warnings.simplefilter("ignore", DeprecationWarning)
            handler = LoggingHandler(logger_provider=gatewayz.logger_provider)
        logging.getLogger().addHandler(handler)
        stack.callback(logging.getLogger().removeHandler, handler)
        stack.enter_context(isolated_state())
        yield gatewayz
