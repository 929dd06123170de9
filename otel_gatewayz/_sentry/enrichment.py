"""The Sentry client's hooks: events get the request's context and our grouping, then everything is scrubbed.

Error events get the request's user, request context, breadcrumbs, tags and fingerprint, the
transaction (route) and Sentry's ``request`` interface, and the trace's DSC for the envelope
header; a report of an error the recorder already handled (the server's own log line) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from opentelemetry.context import Context
from sentry_sdk.serializer import serialize

from .._context.baggage import DscSource, transaction_name
from .._context.state import RequestState, current_state
from .._errors.grouping import ErrorGrouper
from .._errors.recorder import already_recorded
from .._errors.values import MAX_VALUE, bounded_repr
from .._privacy.events import Event, scrub_event
from .._privacy.scrubber import Scrubber
from .._safety.log import contained, logger
from .errors import CAPTURE_HINT
from .request import pii_values, redact_values, request_from_scope

if TYPE_CHECKING:
    from sentry_sdk._types import Event as SentryEvent
    from sentry_sdk._types import Hint

_HEALTH_MARKERS = ("health check", "healthcheck", "/health")


def enrich_event(
    event: Event,
    hint: dict[str, Any],
    state: RequestState | None,
    grouper: ErrorGrouper,
    service: str,
    send_pii: bool = False,
) -> Event | None:
    """``event`` with the request's context and our grouping; None for a duplicate or a health check."""
    tags = event.setdefault("tags", {})
    tags.setdefault("service", service)
    if state is not None:
        name = transaction_name(state)
        if name is not None and not event.get("transaction"):
            event["transaction"] = name
            event["transaction_info"] = {"source": "route"}
        if state.scope is not None and state.scope.get("type") == "http" and "request" not in event:
            event["request"] = request_from_scope(state.scope, send_pii)
        if state.scope is not None and not send_pii:
            # Stack-frame variables (the ASGI scope, a request) would carry them too.
            secrets = pii_values(state.scope)
            if secrets:
                for key in ("exception", "threads", "extra", "message", "logentry"):
                    if key in event:
                        event[key] = redact_values(event[key], secrets)
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
    ours = CAPTURE_HINT in hint  # built by the event worker from the recorder's capture
    if exc_info and exc_info[1] is not None and not ours and already_recorded(exc_info[1]):
        return None
    if exc_info and exc_info[1] is not None and "fingerprint" not in event:
        grouping = grouper.group(exc_info[1], state)
        event["fingerprint"] = list(grouping.fingerprint)
        tags.setdefault("error_type", grouping.category)
        tags.setdefault("user_impact", grouping.user_impact)
    message = str((event.get("logentry") or {}).get("message") or event.get("message") or "").lower()
    if any(marker in message for marker in _HEALTH_MARKERS):
        return None
    return event


def scrubbed_repr(value: Any, scrub_text: Callable[[str], str]) -> str:
    """A value JSON cannot hold, as Sentry gets it: its bounded repr, scrubbed like any text."""
    return scrub_text(bounded_repr(value, MAX_VALUE))


def json_safe(event: SentryEvent, scrub_text: Callable[[str], str]) -> SentryEvent:
    """``event`` as sentry-sdk's serialiser writes it (NaN, objects, datetimes), every repr it makes scrubbed."""
    safe = serialize(cast("dict[str, Any]", event), custom_repr=lambda value: scrubbed_repr(value, scrub_text))
    return cast("SentryEvent", safe)


class SentryHooks:
    """``before_send``, ``before_send_transaction`` and ``before_breadcrumb``, with what they use."""

    def __init__(
        self,
        scrubber: Scrubber,
        grouper: ErrorGrouper,
        service: str,
        dsc: DscSource | None = None,
        send_pii: bool = False,
    ) -> None:
        self._scrubber = scrubber
        self._grouper = grouper
        self._service = service
        self._dsc = dsc
        self._send_pii = send_pii

    def before_send(self, sentry_event: SentryEvent, hint: Hint) -> SentryEvent | None:
        """For events the SDK captured itself: what we add is added after its serialiser ran."""
        prepared = self.prepare_event(sentry_event, hint)
        if prepared is None:
            return None
        try:
            return json_safe(prepared, self._scrubber.scrub_text)
        except Exception:  # noqa: BLE001 - never send what we could not write
            logger.exception("otel_gatewayz: serialising an event failed; the event is dropped")
            return None

    def prepare_event(self, sentry_event: SentryEvent, hint: Hint) -> SentryEvent | None:
        """Enriched with the request's context, then scrubbed; None to drop it (a duplicate, a health check)."""
        event = cast(Event, sentry_event)
        capture = hint.get(CAPTURE_HINT)
        # Off the request path the capture carries the request's state and OTel context.
        state = capture.report.state if capture is not None else current_state()
        context = capture.otel_context if capture is not None else None
        with contained("before_send enrichment"):
            enriched = enrich_event(event, hint, state, self._grouper, self._service, self._send_pii)
            if enriched is None:
                return None
            event = enriched
        with contained("error event trace header"):
            self._add_dsc(event, state, context)
        try:
            return cast("SentryEvent", scrub_event(event, self._scrubber))
        except Exception:  # noqa: BLE001 - never send what we could not scrub
            logger.exception("otel_gatewayz: scrubbing an event failed; the event is dropped")
            return None

    def _add_dsc(self, event: Event, state: RequestState | None, context: Context | None = None) -> None:
        """The trace's DSC, which sentry-sdk moves from ``contexts.trace`` to the envelope's ``trace`` header."""
        if self._dsc is None:
            return
        dsc = self._dsc.for_context(context, state)
        trace_context = (event.get("contexts") or {}).get("trace")
        if dsc is not None and isinstance(trace_context, dict) and trace_context.get("trace_id") == dsc["trace_id"]:
            trace_context["dynamic_sampling_context"] = dsc

    def before_send_transaction(self, event: SentryEvent, hint: Hint) -> SentryEvent | None:
        try:
            return cast("SentryEvent", scrub_event(cast(Event, event), self._scrubber))
        except Exception:  # noqa: BLE001
            logger.exception("otel_gatewayz: scrubbing a transaction failed; it is dropped")
            return None

    def before_breadcrumb(self, crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        try:
            scrubbed: dict[str, Any] = self._scrubber.scrub(crumb)
            return scrubbed
        except Exception:  # noqa: BLE001
            return None
