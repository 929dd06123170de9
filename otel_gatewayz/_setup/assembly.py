"""Every piece built once from the settings, each handed what it uses, without touching the process.

One assembly for production and for tests: :func:`assemble` builds the parts, the runtime, the
Sentry side (its client is made and bound later), the span processors with the trace gate and
the sampler, the log processor, the propagator and what the Prometheus reader and the app's
handlers get. Nothing here sets a global, patches a class, registers an exit or fork hook,
writes the environment, binds a port or starts a thread (the pieces start theirs on first use).
Whoever holds the assembly installs it: the process's install step (``install.py``), or the
test fixture (``otel_gatewayz/_testing``) for one test.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.metrics import MeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler

from .._config.resource import resource_attributes
from .._config.settings import Settings
from .._context.baggage import DscSource
from .._context.processor import ContextSpanProcessor
from .._context.propagation import build_propagator, named_propagator
from .._context.sampling import GatewayzSampler, RecordingSampler
from .._export.console import ConsoleSpanProcessor
from .._export.spans import scrubbed_batch_processor_factory
from .._export.tail import TraceGate, gated_factory, trace_gate
from .._metrics.journal import Journal
from .._metrics.prometheus import PrometheusOptions
from .._privacy.logs import ScrubbingLogProcessor
from .._safety.log import contained, logger
from .._safety.processors import ContainedSpanProcessor
from .runtime import Parts, Runtime, make_runtime
from .versions import Mismatch, sentry_sdk_supported

if TYPE_CHECKING:
    from sentry_sdk.transport import Transport

    from .._sentry.sessions import SessionAggregator
    from .sentry_side import SentrySide

__all__ = ["Assembly", "assemble", "dsc_source", "propagator_for", "sentry_side_module"]


def dsc_source(settings: Settings) -> DscSource:
    """What a trace that starts here puts in its DSC: our key, release, environment and rate."""
    public_key = urlsplit(settings.sentry_dsn).username if settings.sentry_dsn else None
    rate = None if settings.traces_sampler else settings.traces_sample_rate
    return DscSource(public_key, settings.release, settings.environment, rate)


def sentry_side_module(mismatched: Sequence[Mismatch]) -> ModuleType | None:
    """The Sentry side's module, or None with one line when the installed sentry-sdk cannot run it."""
    if not sentry_sdk_supported(list(mismatched)):
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
    """The runtime, and what the SDK's providers, the app and the Prometheus reader get from it.

    ``span_processors``, ``sampler``, ``export_span_processor``, ``log_processor`` and
    ``resource_attributes`` are the SDK configurator's arguments; a test's own providers take the
    same. With ``GATEWAYZ_KEEP_TRACES`` every sender of traces sits behind ``gate``.
    """

    runtime: Runtime
    resource_attributes: dict[str, Any]
    sampler: Sampler | None  # None: the SDK's own, from OTEL_TRACES_SAMPLER
    span_processors: tuple[SpanProcessor, ...]  # contained: the context copy, the console, then the gate or Sentry
    export_span_processor: Callable[..., SpanProcessor]  # per exporter: scrubbed, counted, batched, gated
    gate: TraceGate | None
    log_processor: LogRecordProcessor  # scrubs in place: add it before the exporting processors
    propagator: TextMapPropagator
    prometheus: PrometheusOptions
    journal: Journal  # every cumulative measurement on disk, once the Prometheus reader opens it
    app_flush: Callable[[], bool]  # an app's shutdown: sessions counted so far first, then every queue
    wrap_stack: Callable[[Any], Any] | None  # every app's middleware stack: release-health sessions
    sentry: SentrySide | None = None
    mismatched: tuple[Mismatch, ...] = field(default=())

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def sender(self, processor: SpanProcessor) -> SpanProcessor:
        """``processor`` as one more sender of kept traces (behind the gate, if any), contained."""
        return ContainedSpanProcessor(self.gate.attach(processor) if self.gate is not None else processor)

    def without_sentry(self) -> Assembly:
        """The same parts assembled with Sentry off: for a process whose client could not start."""
        return _assembled(self.runtime.parts, None, self.resource_attributes, self.mismatched)

    def close(self) -> None:
        """Send what is pending to the client, then end every thread the pieces started (not the client's)."""
        self.runtime.flush_errors()
        sentry = self.sentry
        if sentry is None:
            return
        sentry.error_events.close()
        if sentry.traces is not None:
            sentry.traces.force_flush()
            close_traces = getattr(sentry.traces, "close", None)
            if close_traces is not None:
                close_traces()
        if sentry.sessions is not None:
            sentry.sessions.flush()
            sentry.sessions.close()


def _sentry_side(
    parts: Parts, transport: type[Transport] | Transport | None, mismatched: Sequence[Mismatch]
) -> SentrySide | None:
    """The Sentry side when it is wanted and the installed sentry-sdk can run it; else None (one line said why)."""
    if not parts.settings.sentry_enabled:
        return None
    module = sentry_side_module(mismatched)
    if module is None:
        return None
    with contained("Sentry start-up"):
        side: SentrySide = module.assemble(parts, dsc_source(parts.settings), transport)
        return side
    return None


def _span_processors(parts: Parts, sentry: SentrySide | None) -> tuple[list[SpanProcessor], TraceGate | None]:
    """The context copy and the console first; then each sender of traces, behind the gate when it is on."""
    settings = parts.settings
    processors: list[SpanProcessor] = [ContextSpanProcessor()]
    if parts.console is not None:
        processors.append(ConsoleSpanProcessor(parts.console))
    senders = [sentry.traces] if sentry is not None and sentry.traces is not None else []
    gate: TraceGate | None = None
    if settings.keep_traces:  # every sender behind one decision at the local root's end
        gate = trace_gate(
            settings.keep_slower_than, settings.failed_request_status_codes, parts.instruments.drops, senders
        )
        senders = [gate]
    processors.extend(senders)
    return processors, gate


def _app_flush(runtime: Runtime, sessions: SessionAggregator | None) -> Callable[[], bool]:
    """An app's shutdown flush: the sessions counted so far first (the SDK's flush then sends them)."""
    if sessions is None:
        return runtime.flush
    aggregator = sessions

    def flush() -> bool:
        aggregator.flush()
        return runtime.flush()

    return flush


def _assembled(
    parts: Parts, sentry: SentrySide | None, resource: dict[str, Any], mismatched: tuple[Mismatch, ...]
) -> Assembly:
    settings = parts.settings
    drops = parts.instruments.drops
    runtime = make_runtime(parts, configured=True, error_events=sentry.error_events if sentry is not None else None)
    processors, gate = _span_processors(parts, sentry)
    sampler: Sampler | None = None if settings.traces_sampler else GatewayzSampler(settings.traces_sample_rate)
    export: Callable[..., SpanProcessor] = scrubbed_batch_processor_factory(
        parts.clean_spans, drops, settings.shutdown_timeout
    )
    if gate is not None:
        export = gated_factory(gate, export)
        sampler = RecordingSampler(sampler) if sampler is not None else None
    sessions = sentry.sessions if sentry is not None else None
    return Assembly(
        runtime=runtime,
        resource_attributes=resource,
        sampler=sampler,
        span_processors=tuple(ContainedSpanProcessor(processor) for processor in processors),
        export_span_processor=export,
        gate=gate,
        log_processor=ScrubbingLogProcessor(parts.scrubber),
        propagator=propagator_for(settings, dsc_source(settings) if sentry is not None else None),
        prometheus=PrometheusOptions.from_settings(settings),
        journal=Journal(drops),
        app_flush=_app_flush(runtime, sessions),
        wrap_stack=sessions.wrap_stack if sessions is not None else None,
        sentry=sentry,
        mismatched=mismatched,
    )


def assemble(
    settings: Settings,
    *,
    env: Mapping[str, str],
    meter_provider: MeterProvider | None = None,
    sentry_transport: type[Transport] | Transport | None = None,
    mismatched: Sequence[Mismatch] = (),
) -> Assembly:
    """Every piece for ``settings``; ``env`` is what the resource reads (``OTEL_RESOURCE_ATTRIBUTES``...).

    The instruments go on ``meter_provider``, or on the global one once the SDK sets it; Sentry
    sends through a client made with ``sentry_transport`` (None: sentry-sdk's HTTP transport,
    drops counted). ``mismatched`` are the installed dependencies out of range: an unsupported
    sentry-sdk leaves Sentry off.
    """
    parts = Parts.build(settings, meter_provider)
    sentry = _sentry_side(parts, sentry_transport, mismatched)
    return _assembled(parts, sentry, resource_attributes(settings, env), tuple(mismatched))
