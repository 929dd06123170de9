"""The install step: the one place the process's globals are set, from an assembly, once.

``opentelemetry-instrument`` calls our distro (environment defaults), then our configurator,
which calls :func:`build`: the settings read from the environment, the runtime assembled
(``assembly.py``, touching nothing), then :func:`install`. Apps that do not use it call
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
from opentelemetry.sdk.trace import TracerProvider

from .._config.resource import renew_instance_id_after_fork
from .._config.settings import Settings, load_settings
from .._errors.handlers import patch_starlette
from .._errors.log_correlation import install_log_correlation
from .._export.failures import count_export_failures
from .._export.recording import record_exceptions_cheaply
from .._export.spans import CountingBatchSpanProcessor, read_failure_lines
from .._metrics.bounded_http import drop_client_chosen_labels
from .._metrics.genai_labels import GenAiLabels
from .._metrics.measurements import install_measurement_hook
from .._metrics.prometheus import GatewayzPrometheusReader
from .._privacy.logs import install_log_record_factory
from .._safety.log import contained, ensure_visible, logger
from .assembly import Assembly, assemble
from .runtime import Runtime, make_current
from .versions import check_installed

if TYPE_CHECKING:
    from sentry_sdk.client import BaseClient

__all__ = ["SdkConfigure", "build", "install"]

SdkConfigure = Callable[..., None]
_EXPORTER_VARIABLES = (
    ("traces_exporters", "OTEL_TRACES_EXPORTER"),
    ("metrics_exporters", "OTEL_METRICS_EXPORTER"),
    ("logs_exporters", "OTEL_LOGS_EXPORTER"),
)


def build(
    sdk_configure: SdkConfigure, auto_instrumentation_version: str | None, env: MutableMapping[str, str]
) -> Runtime:
    """The process's setup: our lines made visible, the runtime assembled from ``env``, then installed."""
    ensure_visible()  # first: the settings' and the versions' lines are the first an operator needs
    settings = load_settings(env, cwd=os.getcwd())
    for problem in settings.problems:
        logger.error("%s", problem)
    mismatched = check_installed()
    for mismatch in mismatched:
        logger.error("%s", mismatch)
    assembly = assemble(settings, env=env, mismatched=mismatched)
    return install(assembly, sdk_configure, auto_instrumentation_version, env)


def _start_sentry(assembly: Assembly) -> Assembly:
    """The process's Sentry client started and bound to the side assembled for it; or the assembly without Sentry.

    Imported here, not at the top: the assembly imported the Sentry side only because the
    installed sentry-sdk can run it (``assembly.sentry_side_module``).
    """
    side = assembly.sentry
    if side is None:
        return assembly
    from .sentry_side import init_sentry, watch_spotlight

    settings = assembly.settings
    client: BaseClient | None = None
    with contained("Sentry start-up"):
        client = init_sentry(settings, side.hooks, side.transport)
    if client is None:
        return assembly.without_sentry()
    side.slot.bind(client)
    if settings.spotlight:
        watch_spotlight(assembly.runtime.parts.instruments.drops)
    # At interpreter exit (a script, a worker without a lifespan): hand what is queued to the
    # SDK first. atexit runs last-registered first, so this runs before sentry-sdk's own flush.
    atexit.register(side.error_events.flush, settings.shutdown_timeout)
    return assembly


def _validated_exporters(settings: Settings, env: MutableMapping[str, str]) -> None:
    """Give the SDK only exporter names it can load: an unknown one would fail the whole SDK setup."""
    problem_variables = {problem.variable for problem in settings.problems}
    for field, variable in _EXPORTER_VARIABLES:
        if variable in problem_variables:
            env[variable] = ",".join(getattr(settings, field)) or "none"


def _sdk_arguments(
    assembly: Assembly,
    auto_instrumentation_version: str | None,
    readers: list[GatewayzPrometheusReader],
) -> dict[str, Any]:
    """The SDK configurator's arguments: the assembly's pieces, and Sentry's OTLP route's batch processor.

    That processor starts its thread when built, so it is built here; the readers the SDK builds
    from ``OTEL_METRICS_EXPORTER`` are collected in ``readers``, to be started once built.
    """
    span_processors = list(assembly.span_processors)
    otlp = assembly.sentry.otlp if assembly.sentry is not None else None
    if otlp is not None:
        drops, timeout = assembly.runtime.parts.instruments.drops, assembly.settings.shutdown_timeout
        span_processors.append(assembly.sender(CountingBatchSpanProcessor(otlp, drops, timeout, signal=otlp.signal)))
    arguments: dict[str, Any] = {
        "resource_attributes": assembly.resource_attributes,
        "sampler": assembly.sampler,
        "span_processors": span_processors,
        "export_span_processor": assembly.export_span_processor,
        "log_record_processors": [assembly.log_processor],
        "exporter_args_map": {
            GatewayzPrometheusReader: {
                "options": assembly.prometheus,
                "journal": assembly.journal,
                "on_built": readers.append,
            }
        },
    }
    if auto_instrumentation_version:
        arguments["auto_instrumentation_version"] = auto_instrumentation_version
    return arguments


def _configure_sdk(sdk_configure: SdkConfigure, arguments: dict[str, Any], env: Mapping[str, str]) -> None:
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


def _hook_measurements(assembly: Assembly) -> None:
    """Every measurement of the SDK's meter provider: model labels bounded, cumulative ones journaled."""
    provider = metrics.get_meter_provider()
    if isinstance(provider, MeterProvider):
        parts = assembly.runtime.parts
        install_measurement_hook(provider, GenAiLabels(parts.instruments, parts.genai.label), assembly.journal)


def install(
    assembly: Assembly,
    sdk_configure: SdkConfigure,
    auto_instrumentation_version: str | None,
    env: MutableMapping[str, str],
) -> Runtime:
    """Install ``assembly`` into the process: the one place its globals are set.

    In order: log records scrubbed as they are made (and correlated), the Sentry client, the
    runtime the API reaches, the exporters' failure counting, the SDK's providers, the Prometheus
    endpoint, the measurement hook, the fork hook, the propagator and every app's handlers.
    """
    settings = assembly.settings
    install_log_record_factory(assembly.runtime.scrubber)
    if settings.log_correlation:
        install_log_correlation()
    assembly = _start_sentry(assembly)
    runtime = assembly.runtime
    make_current(runtime)

    _validated_exporters(settings, env)
    count_export_failures(runtime.parts.instruments.drops)
    drop_client_chosen_labels()
    if assembly.sentry is not None and assembly.sentry.otlp is not None:
        read_failure_lines(assembly.sentry.otlp)
    if settings.keep_traces:
        with contained("exceptions on spans the head did not sample"):
            record_exceptions_cheaply()
    readers: list[GatewayzPrometheusReader] = []
    _configure_sdk(sdk_configure, _sdk_arguments(assembly, auto_instrumentation_version, readers), env)
    for reader in readers:
        with contained("Prometheus endpoint"):
            reader.serve()
    with contained("measurement hook"):
        _hook_measurements(assembly)
    with contained("instance id after fork"):
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            renew_instance_id_after_fork(provider.resource, env)
    set_global_textmap(assembly.propagator)
    patch_starlette(runtime.recorder, assembly.app_flush, assembly.wrap_stack)
    logger.info(
        "otel_gatewayz: service=%s release=%s environment=%s traces_sample_rate=%s sentry=%s",
        settings.service_name,
        settings.release,
        settings.environment,
        settings.traces_sample_rate,
        "on" if assembly.sentry is not None else "off",
    )
    return runtime
