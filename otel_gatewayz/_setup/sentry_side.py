"""The Sentry side, assembled before its client exists: hooks, error events, traces and sessions.

Everything here is built without touching the process. The pieces send through a
:class:`~otel_gatewayz._sentry.envelopes.ClientSlot`: the install step binds the process's client
to it once ``sentry_sdk.init`` made it, the test fixture a client of its own.

:mod:`.assembly` imports this module only when the installed sentry-sdk is in the supported range,
and inside a guard: should an upstream release move something imported here, Sentry is off with
one line naming the package and what moved, and OpenTelemetry starts as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.trace import SpanProcessor
from sentry_sdk.transport import Transport

from .._context.baggage import DscSource
from .._errors.storm import EventBudget
from .._export.spans import ScrubbingSpanExporter
from .._safety.log import logger
from .._sentry.client import in_process_client, init_sentry
from .._sentry.enrichment import SentryHooks
from .._sentry.envelopes import ClientSlot, TransactionEnvelopes
from .._sentry.error_envelopes import ErrorEnvelopes
from .._sentry.errors import ErrorEventWorker, record_lost, transport_backlog
from .._sentry.routes import NONE, OTLP, SIGNAL, SPANS, sentry_otlp_exporter, traces_route
from .._sentry.sdk import STREAMS_SPANS
from .._sentry.sessions import SessionAggregator
from .._sentry.span_items import SpanItemSender
from .._sentry.spotlight import watch_spotlight
from .._sentry.transactions import SentryTransactionProcessor, TraceSend, TransactionSender
from .._sentry.transport import CountingTransport
from .runtime import Parts

# What the install step starts the process's client with (and watches its Spotlight sender), and a
# test makes its own client with: imported with the side, so that an upstream move is met by the guard.
__all__ = ["SentrySide", "assemble", "hooks_for", "in_process_client", "init_sentry", "watch_spotlight"]


@dataclass(frozen=True)
class SentrySide:
    """The Sentry pieces, for the assembly to hand to the runtime, the span processors and the app.

    The client is made from ``hooks`` and ``transport`` (by the install step, or by a test) and
    bound to ``slot``. Sampled traces go through ``traces``, or on the OTLP route through
    ``otlp``, whose batch processor starts a thread when built: the install step builds it.
    """

    hooks: SentryHooks
    transport: type[Transport] | Transport
    slot: ClientSlot
    error_events: ErrorEventWorker
    sessions: SessionAggregator | None
    traces: SpanProcessor | None = None
    otlp: ScrubbingSpanExporter | None = None


def hooks_for(parts: Parts, dsc: DscSource) -> SentryHooks:
    """The client's ``before_send`` hooks: enrichment, grouping and scrubbing from the parts."""
    settings = parts.settings
    return SentryHooks(parts.scrubber, parts.grouper, settings.service_name, dsc, settings.send_default_pii)


def _traces(parts: Parts, dsc: DscSource, slot: ClientSlot) -> SpanProcessor | ScrubbingSpanExporter | None:
    """Sampled traces to Sentry by the route ``GATEWAYZ_SENTRY_TRACES_VIA`` picks (``routes.py``); None: errors only."""
    settings, drops = parts.settings, parts.instruments.drops
    route = traces_route(settings, STREAMS_SPANS)
    if route == NONE:
        logger.info("otel_gatewayz: no traces go to Sentry, errors only (GATEWAYZ_SENTRY_TRACES_VIA=none)")
        return None
    if route == OTLP and settings.sentry_dsn:
        logger.info("otel_gatewayz: sampled traces go to Sentry's OTLP intake (GATEWAYZ_SENTRY_TRACES_VIA)")
        exporter = sentry_otlp_exporter(settings.sentry_dsn, settings.shutdown_timeout)
        return ScrubbingSpanExporter(exporter, parts.clean_spans, drops, SIGNAL)
    send: TraceSend
    if route == SPANS:
        send = SpanItemSender(slot, dsc, settings.send_default_pii)
    else:
        send = TransactionSender(settings.service_name, TransactionEnvelopes(slot), dsc, settings.send_default_pii)
    return SentryTransactionProcessor(settings.shutdown_timeout, drops, parts.clean_spans, send)


def assemble(parts: Parts, dsc: DscSource, transport: type[Transport] | Transport | None = None) -> SentrySide:
    """The pieces that send through the client made with ``transport`` (None: sentry-sdk's, drops counted).

    Nothing starts here: the workers start their threads on first use.
    """
    settings = parts.settings
    drops = parts.instruments.drops
    hooks = hooks_for(parts, dsc)
    slot = ClientSlot()
    # With a DSN the client has a transport, which takes the sessions (Spotlight alone gets none).
    sessions = (
        SessionAggregator(settings.release, settings.environment, slot.to_transport) if settings.sentry_dsn else None
    )
    budget = settings.error_event_budget
    envelopes = ErrorEnvelopes(slot, hooks.prepare_event, parts.scrubber.scrub_text)
    error_events = ErrorEventWorker(
        drops,
        EventBudget(*budget) if budget else None,
        send=envelopes.send,
        record_lost=lambda count: record_lost(count, client=slot.client),
        backlog=lambda: transport_backlog(slot.client),
    )
    traces = _traces(parts, dsc, slot)
    return SentrySide(
        hooks,
        CountingTransport.bound(drops) if transport is None else transport,
        slot,
        error_events,
        sessions,
        traces if isinstance(traces, SpanProcessor) else None,
        traces if isinstance(traces, ScrubbingSpanExporter) else None,
    )
