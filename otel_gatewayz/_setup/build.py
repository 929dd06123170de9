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
from typing import TYPE_CHECKING, Any

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
from .._context.sampling import GatewayzSampler, RecordingSampler
from .._errors.handlers import patch_starlette
from .._errors.log_correlation import install_log_correlation
from .._export.console import ConsoleSpanProcessor
from .._export.failures import count_export_failures
from .._export.recording import record_exceptions_cheaply
from .._export.spans import scrubbed_batch_processor_factory
from .._export.tail import gated_factory, trace_gate
from .._metrics.bounded_http import drop_client_chosen_labels
from .._metrics.genai_labels import GenAiLabels
from .._metrics.journal import Journal
from .._metrics.measurements import install_measurement_hook
from .._metrics.prometheus import GatewayzPrometheusReader, PrometheusOptions
from .._privacy.logs import ScrubbingLogProcessor, install_log_record_factory
from .._safety.log import contained, ensure_visible, logger
from .._safety.processors import ContainedSpanProcessor
from .assembly import dsc_source, propagator_for, sentry_side_module
from .runtime import Parts, Runtime, install, make_runtime
from .versions import Mismatch, check_installed

if TYPE_CHECKING:
    from .sentry_side import SentrySide

SdkConfigure = Callable[..., None]
_EXPORTER_VARIABLES = (
    ("traces_exporters", "OTEL_TRACES_EXPORTER"),
    ("metrics_exporters", "OTEL_METRICS_EXPORTER"),
    ("logs_exporters", "OTEL_LOGS_EXPORTER"),
)


def _start_sentry(parts: Parts, dsc: DscSource, mismatched: list[Mismatch]) -> SentrySide | None:
    """The started Sentry side, or None: Sentry is unwanted, or cannot start (one line said why)."""
    if not parts.settings.sentry_enabled:
        return None
    module = sentry_side_module(mismatched)
    if module is None:
        return None
    with contained("Sentry start-up"):
        started: SentrySide | None = module.start(parts, dsc)
        return started
    return None


def _validated_exporters(settings: Settings, env: MutableMapping[str, str]) -> None:
    """Give the SDK only exporter names it can load: an unknown one would fail the whole SDK setup."""
    problem_variables = {problem.variable for problem in settings.problems}
    for field, variable in _EXPORTER_VARIABLES:
        if variable in problem_variables:
            env[variable] = ",".join(getattr(settings, field)) or "none"


def _sdk_arguments(
    parts: Parts,
    sentry_traces: SpanProcessor | None,
    auto_instrumentation_version: str | None,
    env: Mapping[str, str],
    journal: Journal,
) -> dict[str, Any]:
    settings = parts.settings
    drops = parts.instruments.drops
    processors: list[SpanProcessor] = [ContextSpanProcessor()]
    if parts.console is not None:
        processors.append(ConsoleSpanProcessor(parts.console))
    senders = [sentry_traces] if sentry_traces is not None else []
    sampler: Sampler | None = None if settings.traces_sampler else GatewayzSampler(settings.traces_sample_rate)
    export: Callable[..., SpanProcessor] = scrubbed_batch_processor_factory(
        parts.clean_spans, drops, settings.shutdown_timeout
    )
    if settings.keep_traces:  # every sender behind one decision at the local root's end
        with contained("exceptions on spans the head did not sample"):
            record_exceptions_cheaply()
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
    mismatched = check_installed()
    for mismatch in mismatched:
        logger.error("%s", mismatch)
    parts = Parts.build(settings)
    install_log_record_factory(parts.scrubber)
    if settings.log_correlation:
        install_log_correlation()
    dsc = dsc_source(settings)
    sentry = _start_sentry(parts, dsc, mismatched)
    sentry_active = sentry is not None
    error_events = sentry.error_events if sentry is not None else None
    if error_events is not None:
        # At interpreter exit (a script, a worker without a lifespan): hand what is queued to the
        # SDK first. atexit runs last-registered first, so this runs before sentry-sdk's own flush.
        atexit.register(error_events.flush, settings.shutdown_timeout)
    runtime = make_runtime(parts, configured=True, error_events=error_events)
    install(runtime)

    _validated_exporters(settings, env)
    count_export_failures(parts.instruments.drops)
    drop_client_chosen_labels()
    journal = Journal(parts.instruments.drops)
    arguments = _sdk_arguments(
        parts, sentry.traces if sentry is not None else None, auto_instrumentation_version, env, journal
    )
    _configure_sdk(sdk_configure, arguments, env)
    with contained("measurement hook"):
        _hook_measurements(parts, journal)
    with contained("instance id after fork"):
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            renew_instance_id_after_fork(provider.resource, env)
    active_dsc = dsc if sentry_active else None
    set_global_textmap(propagator_for(settings, active_dsc))
    sessions = sentry.sessions if sentry is not None else None
    if sessions is None:
        patch_starlette(runtime.recorder, runtime.flush)
    else:
        aggregator = sessions

        def flush() -> bool:
            aggregator.flush()  # before the SDK's flush, which then sends it
            return runtime.flush()

        patch_starlette(runtime.recorder, flush, aggregator.wrap_stack)
    logger.info(
        "otel_gatewayz: service=%s release=%s environment=%s traces_sample_rate=%s sentry=%s",
        settings.service_name,
        settings.release,
        settings.environment,
        settings.traces_sample_rate,
        "on" if sentry_active else "off",
    )
    return runtime
