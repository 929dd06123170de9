"""A runtime assembled without touching the process: settings, a meter provider and a Sentry transport in.

``build.py`` assembles the process's runtime and installs it in one go (global providers, the
propagator, the Starlette patch, ``atexit``, the Prometheus port). This is the assembly alone,
for the in-process test fixture (``otel_gatewayz/_testing``): nothing here sets a global, patches
a class, registers an exit hook, binds a port or starts a thread (the pieces start theirs on first
use, and :meth:`Assembly.close` ends them). Whoever holds the assembly decides what to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry.metrics import MeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import SpanProcessor

from .._config.settings import Settings
from .._context.baggage import DscSource
from .._context.processor import ContextSpanProcessor
from .._context.propagation import build_propagator, named_propagator
from .._privacy.logs import ScrubbingLogProcessor
from .._safety.log import logger
from .._safety.processors import ContainedSpanProcessor
from .runtime import Parts, Runtime, make_runtime
from .versions import Mismatch, sentry_sdk_supported

if TYPE_CHECKING:
    from sentry_sdk.client import BaseClient
    from sentry_sdk.transport import Transport

    from .sentry_side import SentrySide

__all__ = ["Assembly", "assemble", "dsc_source", "propagator_for", "sentry_side_module"]


def dsc_source(settings: Settings) -> DscSource:
    """What a trace that starts here puts in its DSC: our key, release, environment and rate."""
    public_key = urlsplit(settings.sentry_dsn).username if settings.sentry_dsn else None
    rate = None if settings.traces_sampler else settings.traces_sample_rate
    return DscSource(public_key, settings.release, settings.environment, rate)


def sentry_side_module(mismatched: list[Mismatch]) -> ModuleType | None:
    """The Sentry side's module, or None with one line when the installed sentry-sdk cannot run it."""
    if not sentry_sdk_supported(mismatched):
        return None  # the range line was logged with the other mismatches
    try:  # by its module name: ``from . import`` would take a stale package attribute for an import
        sentry_side = importlib.import_module(f"{__package__}.sentry_side")
    except Exception as exc:  # noqa: BLE001 - an upstream release moved what we import: Sentry off, OTel on
        logger.error(
            "otel_gatewayz: sentry-sdk %s: %s (%s); Sentry is off (OpenTelemetry traces, metrics and the "
            "exception handler keep working)",
            metadata.version("sentry-sdk"),
            exc,
            type(exc).__name__,
        )
        return None
    return sentry_side


def propagator_for(settings: Settings, dsc: DscSource | None) -> TextMapPropagator:
    """W3C and Sentry headers, gated by destination host (``GATEWAYZ_TRACE_PROPAGATION_TARGETS``)."""
    if settings.propagators is None:
        return build_propagator(settings.propagation_targets, dsc)
    return named_propagator(settings.propagators, settings.propagation_targets, dsc)


@dataclass(frozen=True)
class Assembly:
    """A runtime and what a tracer provider, a logger provider and an app need from it."""

    runtime: Runtime
    span_processors: tuple[SpanProcessor, ...]  # the context copy first, then the Sentry traces
    log_processor: LogRecordProcessor  # scrubs in place: add it before the exporting processors
    propagator: TextMapPropagator
    sentry: SentrySide | None = None
    sentry_client: BaseClient | None = None

    def close(self) -> None:
        """Send what is pending to the transport, then end every thread the pieces started."""
        self.runtime.flush_errors()
        sentry = self.sentry
        if sentry is not None:
            sentry.error_events.close()
            sentry.traces.force_flush()
            close_traces = getattr(sentry.traces, "close", None)
            if close_traces is not None:
                close_traces()
            if sentry.sessions is not None:
                sentry.sessions.flush()
                sentry.sessions.close()
        if self.sentry_client is not None:
            self.sentry_client.close(timeout=self.runtime.settings.shutdown_timeout)


def assemble(
    settings: Settings, *, meter_provider: MeterProvider, sentry_transport: Transport | None = None
) -> Assembly:
    """The runtime for ``settings`` on ``meter_provider``, its Sentry side sending to ``sentry_transport``.

    Without a transport (or with Sentry disabled in the settings) Sentry is off, as in a process
    without a DSN.
    """
    parts = Parts.build(settings, meter_provider)
    dsc = dsc_source(settings)
    sentry: SentrySide | None = None
    client: BaseClient | None = None
    module = sentry_side_module([]) if sentry_transport is not None and settings.sentry_enabled else None
    if module is not None and sentry_transport is not None:
        sentry, client = module.in_process(parts, dsc, sentry_transport)
    runtime = make_runtime(parts, configured=True, error_events=sentry.error_events if sentry is not None else None)
    processors: list[SpanProcessor] = [ContextSpanProcessor()]
    if sentry is not None:
        processors.append(sentry.traces)
    return Assembly(
        runtime,
        tuple(ContainedSpanProcessor(processor) for processor in processors),
        ScrubbingLogProcessor(parts.scrubber),
        propagator_for(settings, dsc if sentry is not None else None),
        sentry,
        client,
    )
