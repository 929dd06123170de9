"""The Sentry client: initialised from our settings, fed from the OpenTelemetry context.

Error events get the request's user, request context, breadcrumbs, tags and fingerprint, and
the active OTel trace and span ids (through sentry-sdk's OTLP integration, which registers
the OTel span as the event's propagation context). Every event, transaction and breadcrumb
is scrubbed just before it is sent.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.integrations.otlp import OTLPIntegration
from sentry_sdk.profiler import start_profiler

from ._context import current_state
from ._errors import already_recorded, grouping_of
from ._log import contained, logger
from ._runtime import Runtime, runtime
from ._settings import Settings
from ._transport import CountingTransport

_HEALTH_MARKERS = ("health check", "healthcheck", "/health")
# Values Sentry needs verbatim; hex ids could look like card numbers to the value patterns.
_VERBATIM_KEYS = frozenset(
    {"event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp", "release", "environment"}
)
if TYPE_CHECKING:
    from sentry_sdk._types import Event as SentryEvent
    from sentry_sdk._types import Hint
Event = dict[str, Any]


def init_sentry(settings: Settings) -> bool:
    """Start the Sentry client; False (with one error line) when it cannot start."""
    if sentry_sdk.get_client().is_active():
        logger.warning("otel_gatewayz: a Sentry client is already active; keeping it")
        return True
    try:
        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            environment=settings.environment,
            release=settings.release,
            send_default_pii=False,
            max_request_body_size="never",
            include_local_variables=settings.include_local_variables,
            # Transactions are built from OTel spans, not by the SDK, so transaction-bound
            # profiles would never start: profile whole processes (continuous profiling).
            profile_session_sample_rate=settings.profiles_sample_rate or None,
            profile_lifecycle="manual",
            shutdown_timeout=settings.shutdown_timeout,
            spotlight=settings.spotlight or None,
            transport=CountingTransport if settings.sentry_dsn else None,
            # Our processors capture errors and build transactions from OTel spans; the
            # SDK's own web-framework integrations would capture a second copy.
            auto_enabling_integrations=False,
            integrations=[
                OTLPIntegration(setup_otlp_traces_exporter=False, setup_propagator=False, capture_exceptions=False),
                LoggingIntegration(level=None, event_level=logging.ERROR),
            ],
            before_send=_before_send,
            before_send_transaction=_before_send_transaction,
            before_breadcrumb=_before_breadcrumb,
        )
    except Exception as exc:  # noqa: BLE001 - a bad option must not stop the app
        logger.error("otel_gatewayz: SENTRY_DSN: Sentry could not start (%s); Sentry is disabled", type(exc).__name__)
        return False
    # Our own error lines (a failing hook, a bad setting) are for the operator, not Sentry issues.
    ignore_logger("otel_gatewayz")
    if settings.profiles_sample_rate:
        start_profiler()  # a no-op in a process the session rate did not sample
        os.register_at_fork(after_in_child=start_profiler)  # forked workers profile themselves
    logger.info("Sentry initialized successfully (release=%s, environment=%s)", settings.release, settings.environment)
    return True


def scrub_event(rt: Runtime, event: Event) -> Event:
    """Scrub every value of ``event`` except ids and grouping keys; record what was redacted."""
    from ._scrub import ScrubReport

    report = ScrubReport()
    scrubbed: Event = {}
    for key, value in event.items():
        if key in _VERBATIM_KEYS:
            scrubbed[key] = value
        elif key == "contexts" and isinstance(value, dict):
            scrubbed[key] = {
                name: (
                    dict(ctx, data=rt.scrubber.scrub(ctx.get("data"), report, "contexts.trace.data"))
                    if name == "trace" and isinstance(ctx, dict) and "data" in ctx
                    else ctx
                    if name == "trace"
                    else rt.scrubber.scrub(ctx, report, f"contexts.{name}")
                )
                for name, ctx in value.items()
            }
        else:
            scrubbed[key] = rt.scrubber.scrub(value, report, key)
    if report.count:
        extra = scrubbed.setdefault("extra", {})
        if isinstance(extra, dict):
            extra["gatewayz_scrubbed"] = {"count": report.count, "paths": report.paths}
    return scrubbed


def _enrich(rt: Runtime, event: Event, hint: dict[str, Any]) -> Event | None:
    state = current_state()
    tags = event.setdefault("tags", {})
    tags.setdefault("service", rt.settings.service_name)
    if state is not None:
        if state.user:
            event["user"] = {**state.user, **(event.get("user") or {})}
        if state.request:
            contexts = event.setdefault("contexts", {})
            contexts.setdefault("request", dict(state.request))
            for key in ("model", "provider"):
                if state.request.get(key) is not None:
                    tags.setdefault(key, str(state.request[key]))
        if state.breadcrumbs:
            event["breadcrumbs"] = {"values": sorted(state.breadcrumbs, key=lambda c: c["timestamp"])}
    exc_info = hint.get("exc_info")
    if exc_info and exc_info[1] is not None and already_recorded(exc_info[1]):
        return None
    if exc_info and exc_info[1] is not None and "fingerprint" not in event:
        grouping = grouping_of(exc_info[1], state)
        event["fingerprint"] = list(grouping.fingerprint)
        tags.setdefault("error_type", grouping.category)
        tags.setdefault("user_impact", grouping.user_impact)
    message = str((event.get("logentry") or {}).get("message") or event.get("message") or "").lower()
    if any(marker in message for marker in _HEALTH_MARKERS):
        return None
    return event


def _before_send(sentry_event: SentryEvent, hint: Hint) -> SentryEvent | None:
    rt = runtime()
    event = cast(Event, sentry_event)
    with contained("before_send enrichment"):
        enriched = _enrich(rt, event, hint)
        if enriched is None:
            return None
        event = enriched
    try:
        return cast("SentryEvent", scrub_event(rt, event))
    except Exception:  # noqa: BLE001 - never send what we could not scrub
        logger.exception("otel_gatewayz: scrubbing an event failed; the event is dropped")
        return None


def _before_send_transaction(event: SentryEvent, hint: Hint) -> SentryEvent | None:
    try:
        return cast("SentryEvent", scrub_event(runtime(), cast(Event, event)))
    except Exception:  # noqa: BLE001
        logger.exception("otel_gatewayz: scrubbing a transaction failed; it is dropped")
        return None


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        scrubbed: dict[str, Any] = runtime().scrubber.scrub(crumb)
        return scrubbed
    except Exception:  # noqa: BLE001
        return None
