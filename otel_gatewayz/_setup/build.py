"""Build every piece once, in order, and hand each what it uses; then let the SDK configurator run.

``opentelemetry-instrument`` calls our distro (environment defaults), then our configurator,
then instruments FastAPI and httpx with our hooks. Apps that do not use it call
:func:`otel_gatewayz.configure`. Either way a second call returns the first runtime: never a
second provider or Sentry client. Each part starts on its own: a bad setting, a Sentry that
will not start or an SDK that refuses its configuration disables only that part, with one
line naming it; the exception handler and the rest keep working.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import sentry_sdk
from opentelemetry import metrics, trace
from opentelemetry.propagate import set_global_textmap
from opentelemetry.sdk.environment_variables import OTEL_CONFIG_FILE
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Sampler

from .._config.resource import renew_instance_id_after_fork, resource_attributes
from .._config.settings import Settings, load_settings
from .._context.baggage import DscSource
from .._context.processor import ContextSpanProcessor
from .._context.propagation import build_propagator, named_propagator
from .._context.sampling import GatewayzSampler, RecordingSampler
from .._errors.handlers import patch_starlette
from .._errors.log_correlation import install_log_correlation
from .._errors.storm import EventBudget
from .._export.console import ConsoleSpanProcessor
from .._export.failures import count_export_failures
from .._export.spans import CountingBatchSpanProcessor, ScrubbingSpanExporter, scrubbed_batch_processor_factory
from .._export.tail import gated_factory, trace_gate
from .._metrics.bounded_http import drop_client_chosen_labels
from .._metrics.genai_labels import GenAiLabels
from .._metrics.journal import Journal
from .._metrics.measurements import install_measurement_hook
from .._metrics.prometheus import GatewayzPrometheusReader, PrometheusOptions
from .._privacy.logs import ScrubbingLogProcessor, install_log_record_factory
from .._safety.log import contained, ensure_visible, logger
from .._safety.processors import ContainedSpanProcessor
from .._sentry.client import init_sentry
from .._sentry.enrichment import SentryHooks
from .._sentry.envelopes import TransactionEnvelopes
from .._sentry.error_envelopes import ErrorEnvelopes
from .._sentry.errors import ErrorEventWorker
from .._sentry.otlp_traces import OTLP, SIGNAL, sentry_otlp_exporter, traces_route
from .._sentry.sessions import SessionAggregator, wrap_stack
from .._sentry.spotlight import watch_spotlight
from .._sentry.transactions import SentryTransactionProcessor
from .._sentry.transport import CountingTransport
from .runtime import Parts, Runtime, install, make_runtime

SdkConfigure = Callable[..., None]
_EXPORTER_VARIABLES = (
    ("traces_exporters", "OTEL_TRACES_EXPORTER"),
    ("metrics_exporters", "OTEL_METRICS_EXPORTER"),
    ("logs_exporters", "OTEL_LOGS_EXPORTER"),
)


def dsc_source(settings: Settings) -> DscSource:
    """What a trace that starts here puts in its DSC: our key, release, environment and rate."""
    public_key = urlsplit(settings.sentry_dsn).username if settings.sentry_dsn else None
    rate = None if settings.traces_sampler else settings.traces_sample_rate
    return DscSource(public_key, settings.release, settings.environment, rate)


def _start_sentry(parts: Parts, dsc: DscSource) -> SentryHooks | None:
    """The client's hooks once the client started (None: Sentry is off)."""
    settings = parts.settings
    if not settings.sentry_enabled:
        return None
    hooks = SentryHooks(parts.scrubber, parts.grouper, settings.service_name, dsc, settings.send_default_pii)
    started = init_sentry(settings, hooks, CountingTransport.bound(parts.instruments.drops))
    if started and settings.spotlight:
        watch_spotlight(parts.instruments.drops)
    return hooks if started else None


def _sessions(settings: Settings) -> SessionAggregator | None:
    """Release-health aggregates, sent through the started client's own transport (none without one)."""
    transport = sentry_sdk.get_client().transport
    if transport is None:
        return None
    return SessionAggregator(settings.release, settings.environment, transport.capture_envelope)


def _validated_exporters(settings: Settings, env: MutableMapping[str, str]) -> None:
    """Give the SDK only exporter names it can load: an unknown one would fail the whole SDK setup."""
    problem_variables = {problem.variable for problem in settings.problems}
    for field, variable in _EXPORTER_VARIABLES:
        if variable in problem_variables:
            env[variable] = ",".join(getattr(settings, field)) or "none"


def _sentry_traces(parts: Parts, dsc: DscSource) -> SpanProcessor:
    """Transactions as envelopes (every Sentry, Spotlight), or spans batched to Sentry's OTLP intake."""
    settings, drops = parts.settings, parts.instruments.drops
    if traces_route(settings) == OTLP and settings.sentry_dsn:
        exporter = ScrubbingSpanExporter(
            sentry_otlp_exporter(settings.sentry_dsn, settings.shutdown_timeout), parts.clean_spans, drops, SIGNAL
        )
        logger.info("otel_gatewayz: sampled traces go to Sentry's OTLP intake (GATEWAYZ_SENTRY_TRACES_VIA)")
        return CountingBatchSpanProcessor(exporter, drops, settings.shutdown_timeout, signal=SIGNAL)
    return SentryTransactionProcessor(
        settings.service_name,
        settings.shutdown_timeout,
        drops,
        parts.clean_spans,
        TransactionEnvelopes(sentry_sdk.get_client()),
        dsc,
        settings.send_default_pii,
    )


def _sdk_arguments(
    parts: Parts,
    sentry_active: bool,
    auto_instrumentation_version: str | None,
    env: Mapping[str, str],
    dsc: DscSource,
    journal: Journal,
) -> dict[str, Any]:
    settings = parts.settings
    drops = parts.instruments.drops
    processors: list[SpanProcessor] = [ContextSpanProcessor()]
    if parts.console is not None:
        processors.append(ConsoleSpanProcessor(parts.console))
    senders = [_sentry_traces(parts, dsc)] if sentry_active else []
    sampler: Sampler | None = None if settings.traces_sampler else GatewayzSampler(settings.traces_sample_rate)
    export: Callable[..., SpanProcessor] = scrubbed_batch_processor_factory(
        parts.clean_spans, drops, settings.shutdown_timeout
    )
    if settings.keep_traces:  # every sender behind one decision at the local root's end
        gate = trace_gate(settings.keep_slower_than, settings.failed_request_status_codes, drops, senders)
        senders, export = [gate], gated_factory(gate, export)
        sampler = RecordingSampler(sampler) if sampler is not None else None
    processors.extend(senders)
    arguments: dict[str, Any] = {
        "resource_attributes": resource_attributes(settings, env),
        "sampler": sampler,
        "span_processors": [ContainedSpanProcessor(processor) for processor in processors],
        "export_span_processor": export,
        "log_record_processors": [ScrubbingLogProcessor(parts.scrubber)],
        "exporter_args_map": {
            GatewayzPrometheusReader: {"options": PrometheusOptions.from_settings(settings), "journal": journal}
        },
    }
    if auto_instrumentation_version:
        arguments["auto_instrumentation_version"] = auto_instrumentation_version
    return arguments


def _configure_sdk(sdk_configure: SdkConfigure, arguments: dict[str, Any], env: MutableMapping[str, str]) -> None:
    """Let the SDK's own configurator build the providers; with a config file, the file decides.

    With ``OTEL_CONFIG_FILE`` the SDK takes everything from the file and ignores our arguments,
    so our span processors are added to the provider the file built; its exporters, sampler and
    resource stay as written there (our scrubbing does not wrap them), and one line says so.
    """
    config_file = env.get(OTEL_CONFIG_FILE)
    try:
        sdk_configure(**({} if config_file else arguments))
    except Exception as exc:  # noqa: BLE001 - the SDK's refusal must not take Sentry and the handler down
        variable = OTEL_CONFIG_FILE if config_file else "OTEL_* exporter/sampler settings"
        logger.error(
            "otel_gatewayz: %s: the OpenTelemetry SDK could not be configured (%s: %s); traces, metrics "
            "and logs are not exported; Sentry errors and the exception handler keep working",
            variable,
            type(exc).__name__,
            exc,
        )
        return
    if config_file:
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            for processor in arguments["span_processors"]:
                provider.add_span_processor(processor)
        logger.warning(
            "otel_gatewayz: %s is set: the SDK is configured from that file alone (its exporters, sampler and "
            "resource); otel_gatewayz adds its context and Sentry span processors, but does not scrub that "
            "file's exporters, set the resource or the sampler",
            OTEL_CONFIG_FILE,
        )


def _hook_measurements(parts: Parts, journal: Journal) -> None:
    """Every measurement of the SDK's meter provider: model labels bounded, cumulative ones journaled."""
    provider = metrics.get_meter_provider()
    if isinstance(provider, MeterProvider):
        install_measurement_hook(provider, GenAiLabels(parts.instruments, parts.genai.label), journal)


def build(
    sdk_configure: SdkConfigure, auto_instrumentation_version: str | None, env: MutableMapping[str, str]
) -> Runtime:
    """Build and install the runtime, then the SDK's providers, propagator and app handlers."""
    ensure_visible()
    settings = load_settings(env, cwd=os.getcwd())
    for problem in settings.problems:
        logger.error("%s", problem)
    parts = Parts.build(settings)
    install_log_record_factory(parts.scrubber)
    if settings.log_correlation:
        install_log_correlation()
    dsc = dsc_source(settings)
    hooks: SentryHooks | None = None
    sessions: SessionAggregator | None = None
    with contained("Sentry start-up"):
        hooks = _start_sentry(parts, dsc)
        sessions = _sessions(settings) if hooks is not None else None
    sentry_active = hooks is not None
    error_events = None
    if hooks is not None:
        budget = settings.error_event_budget
        envelopes = ErrorEnvelopes(sentry_sdk.get_client(), hooks.prepare_event, parts.scrubber.scrub_text)
        error_events = ErrorEventWorker(
            parts.instruments.drops, EventBudget(*budget) if budget else None, send=envelopes.send
        )
        # At interpreter exit (a script, a worker without a lifespan): hand what is queued to the
        # SDK first. atexit runs last-registered first, so this runs before sentry-sdk's own flush.
        atexit.register(error_events.flush, settings.shutdown_timeout)
    runtime = make_runtime(parts, configured=True, sentry_active=sentry_active, error_events=error_events)
    install(runtime)

    _validated_exporters(settings, env)
    count_export_failures(parts.instruments.drops)
    drop_client_chosen_labels()
    journal = Journal(parts.instruments.drops)
    arguments = _sdk_arguments(parts, sentry_active, auto_instrumentation_version, env, dsc, journal)
    _configure_sdk(sdk_configure, arguments, env)
    with contained("measurement hook"):
        _hook_measurements(parts, journal)
    with contained("instance id after fork"):
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            renew_instance_id_after_fork(provider.resource, env)
    active_dsc = dsc if sentry_active else None
    set_global_textmap(
        build_propagator(settings.propagation_targets, active_dsc)
        if settings.propagators is None
        else named_propagator(settings.propagators, settings.propagation_targets, active_dsc)
    )
    if sessions is None:
        patch_starlette(runtime.recorder, runtime.flush)
    else:
        aggregator = sessions

        def flush() -> bool:
            aggregator.flush()  # before the SDK's flush, which then sends it
            return runtime.flush()

        patch_starlette(runtime.recorder, flush, wrap_stack(aggregator))
    logger.info(
        "otel_gatewayz: service=%s release=%s environment=%s traces_sample_rate=%s sentry=%s",
        settings.service_name,
        settings.release,
        settings.environment,
        settings.traces_sample_rate,
        "on" if sentry_active else "off",
    )
    return runtime
