"""Build the providers once, on the SDK's own plug points, for both entry paths.

``opentelemetry-instrument`` calls our distro (environment defaults), then our configurator
(:func:`configure`), then instruments FastAPI and httpx with our hooks. Apps that do not use
it call :func:`configure` themselves. Either way a second call returns the first runtime:
never a second provider or Sentry client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import set_global_textmap
from opentelemetry.sdk._configuration import _initialize_components
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from ._context import ContextSpanProcessor
from ._export import scrubbed_batch_processor
from ._handler import patch_starlette
from ._hooks import fastapi_instrument_kwargs, httpx_instrument_kwargs
from ._log import contained, ensure_visible, logger
from ._logs import ScrubbingLogProcessor, install_log_record_factory
from ._propagation import build_propagator
from ._resource import renew_instance_id_after_fork, resource_attributes
from ._runtime import Runtime, _lock, install, make_runtime, runtime
from ._sampling import GatewayzSampler
from ._sentry import init_sentry
from ._settings import Settings, load_settings
from ._transactions import SentryTransactionProcessor

EXCLUDED_URLS = r"/(health|healthz|metrics)/?(\?.*)?$"


class ContainedSpanProcessor(SpanProcessor):
    """One of our processors, each hook contained: a bug in it is logged once, never raised into a span."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner
        self._name = type(inner).__name__

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with contained(f"span processor {self._name}.on_start"):
            self._inner.on_start(span, parent_context)

    def _on_ending(self, span: Any) -> None:
        with contained(f"span processor {self._name}._on_ending"):
            self._inner._on_ending(span)

    def on_end(self, span: Any) -> None:
        with contained(f"span processor {self._name}.on_end"):
            self._inner.on_end(span)

    def shutdown(self) -> None:
        with contained(f"span processor {self._name}.shutdown"):
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with contained(f"span processor {self._name}.force_flush"):
            return self._inner.force_flush(timeout_millis)
        return False


def environment_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults for standard ``OTEL_*`` variables; the caller only sets what is unset."""
    otlp = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    otlp_metrics = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
    otlp_logs = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"))
    return {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        # No collector configured: no OTLP exporter, so no retry noise.
        "OTEL_TRACES_EXPORTER": "otlp_proto_http" if otlp else "none",
        "OTEL_METRICS_EXPORTER": "gatewayz_prometheus" + (",otlp_proto_http" if otlp_metrics else ""),
        "OTEL_LOGS_EXPORTER": "otlp_proto_http" if otlp_logs else "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": EXCLUDED_URLS,
        "OTEL_PYTHON_HTTPX_EXCLUDED_URLS": "",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9464",
    }


def apply_environment_defaults(env: MutableMapping[str, str]) -> None:
    for key, value in environment_defaults(env).items():
        env.setdefault(key, value)


def _build(auto_instrumentation_version: str | None) -> Runtime:
    ensure_visible()
    install_log_record_factory()
    settings = load_settings(os.environ, cwd=os.getcwd())
    for problem in settings.problems:
        logger.error("%s", problem)
    sentry_active = settings.sentry_enabled and init_sentry(settings)
    rt = make_runtime(settings, configured=True, sentry_active=sentry_active)
    install(rt)

    processors: list[SpanProcessor] = [ContextSpanProcessor()]
    if sentry_active:
        processors.append(SentryTransactionProcessor())
    processors = [ContainedSpanProcessor(processor) for processor in processors]
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else GatewayzSampler(settings.traces_sample_rate)
    kwargs: dict[str, Any] = {
        "resource_attributes": resource_attributes(settings),
        "sampler": sampler,
        "span_processors": processors,
        "export_span_processor": scrubbed_batch_processor,
        "log_record_processors": [ScrubbingLogProcessor()],
    }
    if auto_instrumentation_version:
        kwargs["auto_instrumentation_version"] = auto_instrumentation_version
    _initialize_components(**kwargs)
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        renew_instance_id_after_fork(provider.resource)
    set_global_textmap(build_propagator(settings.propagation_targets))
    patch_starlette()
    logger.info(
        "otel_gatewayz: service=%s release=%s environment=%s traces_sample_rate=%s sentry=%s",
        settings.service_name,
        settings.release,
        settings.environment,
        settings.traces_sample_rate,
        "on" if sentry_active else "off",
    )
    return rt


def configure(*, instrument: bool = True) -> Settings:
    """Configure tracing, metrics and Sentry from the environment; idempotent.

    Call it before creating the FastAPI app when not running under ``opentelemetry-instrument``.
    With ``instrument=True`` it also instruments FastAPI and httpx.
    """
    with _lock:
        current = runtime()
        if current.configured:
            return current.settings
        apply_environment_defaults(os.environ)
        rt = _build(None)
        if instrument:
            _instrument_libraries()
        return rt.settings


def configure_from_auto_instrumentation(auto_instrumentation_version: str | None) -> None:
    """The configurator's entry: instrumentations are loaded by ``opentelemetry-instrument`` itself."""
    with _lock:
        if runtime().configured:
            return
        _build(auto_instrumentation_version)


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    fastapi = FastAPIInstrumentor()
    if not fastapi.is_instrumented_by_opentelemetry:
        fastapi.instrument(**fastapi_instrument_kwargs())
    httpx = HTTPXClientInstrumentor()
    if not httpx.is_instrumented_by_opentelemetry:
        httpx.instrument(**httpx_instrument_kwargs())
