"""sentry-sdk's HTTP transport, with every drop counted in a metric and logged once.

When Sentry refuses, rate-limits, times out or is unreachable, the SDK already drops without
blocking (bounded queue, background worker); this makes the loss visible instead of silent.
One more thing the SDK would lose without a word is kept here: error events crowded out of the
queue by transactions while Sentry is slow.
"""

from __future__ import annotations

import logging
from typing import Any

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import HttpTransport

from ._log import contained, log_once
from ._runtime import runtime

# Transactions may fill the SDK's queue up to this share; the rest is kept for error events.
TRANSACTION_SHARE = 0.5


class CountingTransport(HttpTransport):
    """Counts drops (``gatewayz_telemetry_dropped_total{signal="sentry"}``) and deliveries."""

    delivered = 0
    dropped = 0

    def capture_envelope(self, envelope: Envelope) -> None:
        types = {item.type for item in envelope.items}
        if "transaction" in types and "event" not in types and self._backlog() >= TRANSACTION_SHARE:
            # Errors are never sampled away: while Sentry is slow, transactions yield the queue.
            self.on_dropped_event("transaction_backlog")
            for item in envelope.items:
                self.record_lost_event("queue_overflow", item=item)
            return
        super().capture_envelope(envelope)

    def _backlog(self) -> float:
        """How full the SDK's send queue is, 0..1 (0 when it cannot be told)."""
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
        with contained("Sentry drop counting"):
            runtime().instruments.dropped.add(1, {"signal": "sentry", "reason": str(reason)})
        log_once(
            f"sentry-drop:{reason}",
            logging.WARNING,
            "otel_gatewayz: Sentry dropped an envelope (%s); further drops are counted in "
            "gatewayz_telemetry_dropped_total, not logged",
            reason,
        )

    def _handle_response(self, response: Any, envelope: Any) -> None:
        if 200 <= getattr(response, "status", 0) < 300:
            CountingTransport.delivered += 1
        super()._handle_response(response=response, envelope=envelope)
