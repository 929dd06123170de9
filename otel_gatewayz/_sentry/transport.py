"""sentry-sdk's HTTP transport, with every drop counted in a metric and logged once.

When Sentry refuses, rate-limits, times out or is unreachable, the SDK already drops without
blocking (bounded queue, background worker); this makes the loss visible instead of silent.
One more thing the SDK would lose without a word is kept here: error events crowded out of the
queue by transactions while Sentry is slow.
"""

from __future__ import annotations

from typing import Any

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import HttpTransport

from .._metrics.drops import DropCounter

# Transactions and span items may fill the SDK's queue up to this share; the rest is kept for error events.
TRANSACTION_SHARE = 0.5
_TRACE_ITEMS = frozenset({"transaction", "span"})


class CountingTransport(HttpTransport):
    """Counts drops (``gatewayz_telemetry_dropped_total{signal="sentry"}``) and deliveries.

    sentry-sdk builds its transport from a class and the client options, so the drop counter is
    bound to a subclass (:meth:`bound`) by the setup instead of passed to ``__init__``.
    """

    delivered = 0
    dropped = 0
    drops: DropCounter | None = None

    @classmethod
    def bound(cls, drops: DropCounter) -> type[CountingTransport]:
        return type(cls.__name__, (cls,), {"drops": drops})

    def capture_envelope(self, envelope: Envelope) -> None:
        types = {item.type for item in envelope.items}
        if types & _TRACE_ITEMS and "event" not in types and self._backlog() >= TRANSACTION_SHARE:
            # Errors are never sampled away: while Sentry is slow, transactions yield the queue.
            self.on_dropped_event("transaction_backlog")
            for item in envelope.items:
                self.record_lost_event("queue_overflow", item=item)
            return
        super().capture_envelope(envelope)

    def backlog(self) -> float:
        """How full the SDK's send queue is, 0..1 (the error-event worker waits while it is full)."""
        return self._backlog()

    def _backlog(self) -> float:
        """How full the SDK's send queue is, 0..1 (0 when it cannot be told).

        The SDK has no public queue size: ``_worker._queue`` is read (guarded by a test).
        """
        queue = getattr(getattr(self, "_worker", None), "_queue", None)
        size = self.options.get("transport_queue_size") or 0
        if queue is None or size <= 0:
            return 0.0
        try:
            return float(queue.qsize()) / size
        except Exception:  # noqa: BLE001 - an unknown worker: no reserve, the SDK's own bound holds
            return 0.0

    def on_dropped_event(self, reason: str) -> None:
        CountingTransport.dropped += 1
        if self.drops is not None:
            self.drops.count("sentry", str(reason), what="Sentry dropped an envelope")

    def _handle_response(self, response: Any, envelope: Any) -> None:
        # The SDK reports losses (on_dropped_event) but not deliveries; its private response
        # handler is the one place a 2xx is seen (guarded by a test).
        if 200 <= getattr(response, "status", 0) < 300:
            CountingTransport.delivered += 1
        super()._handle_response(response=response, envelope=envelope)
