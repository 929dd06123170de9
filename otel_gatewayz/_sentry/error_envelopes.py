"""Error events sent as envelopes straight to the client's transport, without ``capture_event``.

``capture_event`` runs every event through sentry-sdk's serialiser, a walk of the whole event
as costly as our scrub and the largest single cost of an error event. Here the event gets what
``capture_event`` gives it, in the SDK's order: the merged scopes (global, isolation, current:
tags, contexts, user, and the integrations' event processors, such as modules, argv and
dedupe), then release, environment, server name, SDK and platform, the SDK's event scrubber,
then our hooks (enrichment, scrubbing), then one ``json.dumps`` in which an object JSON cannot
hold becomes its bounded repr, scrubbed like any text. An event that still cannot be written
(a NaN, an odd key, a reference cycle) goes through the SDK's serialiser after all, its reprs
scrubbed too. ``sample_rate`` and ``ignore_errors``, which ``capture_event`` would apply, are
options our client never sets.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

import sentry_sdk
from sentry_sdk._types import AnnotatedValue
from sentry_sdk.envelope import Item, PayloadRef
from sentry_sdk.utils import format_timestamp

from .._safety.log import log_once
from .enrichment import json_safe, scrubbed_repr
from .envelopes import ClientSlot, hand_over

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

Prepare = Callable[["Event", "Hint"], "Event | None"]


class ErrorEnvelopes:
    """``send(event, hint)`` for the error-event worker: one event, one envelope."""

    def __init__(
        self,
        slot: ClientSlot,
        prepare: Prepare,
        scrub_text: Callable[[str], str],
    ) -> None:
        self._slot = slot
        self._prepare = prepare
        self._scrub_text = scrub_text

    def send(self, event: dict[str, Any], hint: dict[str, Any]) -> str | None:
        client, static = self._slot.bound
        if not client.is_active():  # closed (a late flush at exit): as ``capture_event`` would, nothing
            return None
        scope = sentry_sdk.get_global_scope().fork()
        scope.update_from_scope(sentry_sdk.get_isolation_scope())
        scope.update_from_scope(sentry_sdk.get_current_scope())
        applied = scope.apply_to_event(cast("Event", event), hint, client.options)
        if applied is None:  # an event processor (dedupe) dropped it
            self._lost("event_processor")
            return None
        prepared = cast("dict[str, Any]", applied)
        prepared.setdefault("event_id", uuid.uuid4().hex)  # the summary event has none yet
        for key, value in static.items():
            if prepared.get(key) is None:
                prepared[key] = value
        timestamp = prepared.get("timestamp") or datetime.now(timezone.utc)
        prepared["timestamp"] = format_timestamp(timestamp) if isinstance(timestamp, datetime) else timestamp
        event_scrubber = client.options.get("event_scrubber")
        if event_scrubber is not None:  # the SDK's denylist (session cookies, PII keys), before ours
            event_scrubber.scrub_event(prepared)
        final = self._prepare(cast("Event", prepared), hint)
        if final is None:
            self._lost("before_send")
            return None
        trace_context = final.get("contexts", {}).get("trace") or {}
        dsc = cast("dict[str, Any] | None", trace_context.pop("dynamic_sampling_context", None))
        try:
            payload = self._dumps(final)
        except (TypeError, ValueError, RecursionError) as exc:
            log_once(
                "error-envelope-serialiser",
                logging.INFO,
                "otel_gatewayz: an error event held a value JSON cannot write (%s); it went through sentry-sdk's "
                "serialiser",
                type(exc).__name__,
            )
            payload = self._dumps(json_safe(final, self._scrub_text))
        event_id = str(final["event_id"])
        hand_over(client, event_id, dsc, Item(payload=PayloadRef(bytes=payload), type="event"))
        return event_id

    def _dumps(self, event: Event) -> bytes:
        return json.dumps(event, allow_nan=False, separators=(",", ":"), default=self._json_value).encode()

    def _json_value(self, value: Any) -> Any:
        """A value ``json`` cannot write: timestamps formatted, other objects as their bounded, scrubbed repr."""
        if isinstance(value, datetime):
            return format_timestamp(value)
        if isinstance(value, AnnotatedValue):
            return value.value  # what the SDK's scrubber left; its ``_meta`` note is not sent
        return scrubbed_repr(value, self._scrub_text)

    def _lost(self, reason: str) -> None:
        transport = self._slot.client.transport
        if transport is not None:
            transport.record_lost_event(reason, data_category="error")
