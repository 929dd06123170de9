"""Transaction envelopes handed straight to the Sentry client's transport (and Spotlight).

Our transactions are complete and already scrubbed when built (from the clean span copies the
OTLP export uses too), so the client's ``capture_event`` would only copy them again: scope
merge, serialiser, ``before_send_transaction`` scrub. What it would add is added here, computed
once: release, environment, server name, SDK and runtime. Scope data set with sentry-sdk's own
API (``sentry_sdk.set_tag``) is not merged into transactions; errors still get it.
"""

from __future__ import annotations

import platform
import sys
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from sentry_sdk.client import BaseClient, NonRecordingClient
from sentry_sdk.consts import VERSION
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.utils import format_timestamp

if TYPE_CHECKING:
    from sentry_sdk._types import Event


def static_fields(client: BaseClient) -> dict[str, Any]:
    options = client.options
    fields: dict[str, Any] = {"platform": "python"}
    for key in ("release", "environment", "server_name", "dist"):
        if options.get(key) is not None:
            fields[key] = str(options[key]).strip()
    fields["sdk"] = {
        "name": "sentry.python",
        "version": VERSION,
        "packages": [{"name": "pypi:sentry-sdk", "version": VERSION}],
        "integrations": sorted(getattr(client, "integrations", {}) or {}),
    }
    return fields


class ClientSlot:
    """The client the Sentry side sends through, bound once it exists; until then, nothing is sent.

    The process's client is made by ``sentry_sdk.init`` in the install step (its constructor sets
    up the integrations, for good), after the pieces that send through it were assembled; a
    test's client of its own is bound as soon as it is made. Unbound, it is sentry-sdk's
    non-recording client: not active, no transport.
    """

    def __init__(self, client: BaseClient | None = None) -> None:
        unbound = client or NonRecordingClient()
        self._bound: tuple[BaseClient, dict[str, Any]] = (unbound, static_fields(unbound))

    def bind(self, client: BaseClient) -> None:
        self._bound = (client, static_fields(client))  # one assignment: readers never see a half

    @property
    def bound(self) -> tuple[BaseClient, dict[str, Any]]:
        """The client and what ``capture_event`` would add to its events (:func:`static_fields`), together."""
        return self._bound

    @property
    def client(self) -> BaseClient:
        return self._bound[0]

    def to_transport(self, envelope: Envelope) -> None:
        """``envelope`` to the client's transport alone (sessions: sentry-sdk sends them to Spotlight neither)."""
        transport = self._bound[0].transport
        if transport is not None:
            transport.capture_envelope(envelope)


RUNTIME = {"name": platform.python_implementation(), "version": platform.python_version(), "build": sys.version}


def hand_over(client: BaseClient, event_id: str, dsc: dict[str, Any] | None, item: Item) -> None:
    """One event's envelope, with the headers ``capture_event`` writes, to Spotlight and the transport.

    The client's ``spotlight`` (sentry-sdk's Spotlight forwarder) is read by name; a test fails
    if that attribute moves.
    """
    headers: dict[str, object] = {"event_id": event_id, "sent_at": format_timestamp(datetime.now(timezone.utc))}
    if dsc:
        headers["trace"] = dsc
    deliver(client, Envelope(headers=headers, items=[item]))


def deliver(client: BaseClient, envelope: Envelope) -> None:
    """An envelope to the client's Spotlight forwarder (a copy, as ``capture_event`` gives it) and its transport."""
    spotlight = getattr(client, "spotlight", None)
    if spotlight is not None:
        spotlight.capture_envelope(envelope)
    if client.transport is not None:
        client.transport.capture_envelope(envelope)


class TransactionEnvelopes:
    """Sends one finished transaction event as one envelope, through the client bound to ``slot``."""

    def __init__(self, slot: ClientSlot) -> None:
        self._slot = slot

    def send(self, event: dict[str, Any]) -> str:
        client, static = self._slot.bound
        event_id = uuid.uuid4().hex
        event["event_id"] = event_id
        event.update(static)
        event["contexts"].setdefault("runtime", RUNTIME)
        dsc = event["contexts"]["trace"].pop("dynamic_sampling_context", None)
        hand_over(client, event_id, dsc, Item(payload=PayloadRef(json=cast("Event", event)), type="transaction"))
        return event_id
