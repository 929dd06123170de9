"""The Sentry side, assembled once the client started: hooks, error events, traces and sessions.

:mod:`.build` imports this module only when the installed sentry-sdk is in the supported range,
and inside a guard: should an upstream release move something imported here, Sentry is off with
one line naming the package and what moved, and OpenTelemetry starts as usual.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sentry_sdk
from opentelemetry.sdk.trace import SpanProcessor
from sentry_sdk.client import BaseClient
from sentry_sdk.transport import Transport

from .._context.baggage import DscSource
from .._errors.storm import EventBudget
from .._export.spans import CountingBatchSpanProcessor, ScrubbingSpanExporter
from .._safety.log import logger
from .._sentry.client import in_process_client, init_sentry
from .._sentry.enrichment import SentryHooks
from .._sentry.envelopes import TransactionEnvelopes
from .._sentry.error_envelopes import ErrorEnvelopes
from .._sentry.errors import ErrorEventWorker, record_lost, transport_backlog
from .._sentry.routes import OTLP, SIGNAL, SPANS, sentry_otlp_exporter, traces_route
from .._sentry.sdk import STREAMS_SPANS
from .._sentry.sessions import SessionAggregator
from .._sentry.span_items import SpanItemSender
from .._sentry.spotlight import watch_spotlight
from .._sentry.transactions import SentryTransactionProcessor, TraceSend, TransactionSender
from .._sentry.transport import CountingTransport
from .runtime import Parts

__all__ = ["SentrySide", "assemble", "hooks_for", "in_process", "start"]


@dataclass(frozen=True)
class SentrySide:
    """The started client's pieces, for the setup to hand to the runtime, the SDK and the app."""

    hooks: SentryHooks
    error_events: ErrorEventWorker
    traces: SpanProcessor
    sessions: SessionAggregator | None


def _traces(parts: Parts, dsc: DscSource, client: BaseClient) -> SpanProcessor:
    """Sampled traces to Sentry by the route ``GATEWAYZ_SENTRY_TRACES_VIA`` picks (``routes.py``)."""
    settings, drops = parts.settings, parts.instruments.drops
    route = traces_route(settings, STREAMS_SPANS)
    if route == OTLP and settings.sentry_dsn:
        exporter = ScrubbingSpanExporter(
            sentry_otlp_exporter(settings.sentry_dsn, settings.shutdown_timeout), parts.clean_spans, drops, SIGNAL
        )
        logger.info("otel_gatewayz: sampled traces go to Sentry's OTLP intake (GATEWAYZ_SENTRY_TRACES_VIA)")
        return CountingBatchSpanProcessor(exporter, drops, settings.shutdown_timeout, signal=SIGNAL)
    send: TraceSend
    if route == SPANS:
        send = SpanItemSender(client, dsc, settings.send_default_pii)
    else:
        send = TransactionSender(settings.service_name, TransactionEnvelopes(client), dsc, settings.send_default_pii)
    return SentryTransactionProcessor(settings.shutdown_timeout, drops, parts.clean_spans, send)


def hooks_for(parts: Parts, dsc: DscSource) -> SentryHooks:
    """The client's ``before_send`` hooks: enrichment, grouping and scrubbing from the parts."""
    settings = parts.settings
    return SentryHooks(parts.scrubber, parts.grouper, settings.service_name, dsc, settings.send_default_pii)


def start(parts: Parts, dsc: DscSource) -> SentrySide | None:
    """Start the process's client with our hooks and transport; None (one line said why) when it cannot start."""
    settings = parts.settings
    drops = parts.instruments.drops
    hooks = hooks_for(parts, dsc)
    if not init_sentry(settings, hooks, CountingTransport.bound(drops)):
        return None
    if settings.spotlight:
        watch_spotlight(drops)
    return assemble(parts, dsc, sentry_sdk.get_client(), hooks)


def in_process(parts: Parts, dsc: DscSource, transport: Transport) -> tuple[SentrySide, BaseClient]:
    """The Sentry side on a client of its own sending to ``transport``: nothing in the process is touched."""
    hooks = hooks_for(parts, dsc)
    client = in_process_client(parts.settings, hooks, transport)
    return assemble(parts, dsc, client, hooks), client


def assemble(parts: Parts, dsc: DscSource, client: BaseClient, hooks: SentryHooks) -> SentrySide:
    """The pieces that send through ``client``: error events, traces, sessions (threads start on first use)."""
    settings = parts.settings
    drops = parts.instruments.drops
    transport = client.transport
    sessions = (
        SessionAggregator(settings.release, settings.environment, transport.capture_envelope) if transport else None
    )
    budget = settings.error_event_budget
    envelopes = ErrorEnvelopes(client, hooks.prepare_event, parts.scrubber.scrub_text)
    error_events = ErrorEventWorker(
        drops,
        EventBudget(*budget) if budget else None,
        send=envelopes.send,
        record_lost=functools.partial(record_lost, client=client),
        backlog=functools.partial(transport_backlog, client),
    )
    return SentrySide(hooks, error_events, _traces(parts, dsc, client), sessions)
