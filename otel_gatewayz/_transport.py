"""sentry-sdk's HTTP transport, with every drop counted in a metric and logged once.

When Sentry refuses, rate-limits, times out or is unreachable, the SDK already drops without
blocking (bounded queue, background worker); this makes the loss visible instead of silent.
"""

from __future__ import annotations

import logging
from typing import Any

from sentry_sdk.transport import HttpTransport

from ._log import log_once
from ._runtime import runtime


class CountingTransport(HttpTransport):
    """Counts drops (``gatewayz_telemetry_dropped_total{signal="sentry"}``) and deliveries."""

    delivered = 0
    dropped = 0

    def on_dropped_event(self, reason: str) -> None:
        CountingTransport.dropped += 1
        try:
            runtime().instruments.dropped.add(1, {"signal": "sentry", "reason": str(reason)})
        finally:
            log_once(f"sentry-drop:{reason}", logging.WARNING,
                     "otel_gatewayz: Sentry dropped an envelope (%s); further drops are counted in "
                     "gatewayz_telemetry_dropped_total, not logged", reason)

    def _handle_response(self, response: Any, envelope: Any) -> None:
        if 200 <= getattr(response, "status", 0) < 300:
            CountingTransport.delivered += 1
        super()._handle_response(response=response, envelope=envelope)
