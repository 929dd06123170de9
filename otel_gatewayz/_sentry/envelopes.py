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

from sentry_sdk.client import BaseClient
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
    """Sends one finished transaction event as one envelope, through the client the setup started."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client
        self._static = static_fields(client)

    def send(self, event: dict[str, Any]) -> str:
        event_id = uuid.uuid4().hex
        event["event_id"] = event_id
        event.update(self._static)
        event["contexts"].setdefault("runtime", RUNTIME)
        dsc = event["contexts"]["trace"].pop("dynamic_sampling_context", None)
        hand_over(self._client, event_id, dsc, Item(payload=PayloadRef(json=cast("Event", event)), type="transaction"))
        return event_id
