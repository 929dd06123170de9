"""The one drop counter: every telemetry loss is counted by signal and reason, and logged once per reason."""

from __future__ import annotations

import logging

from opentelemetry.metrics import Counter

from .._safety.log import contained, log_once


class DropCounter:
    """Counts lost telemetry in ``gatewayz_telemetry_dropped_total{signal, reason}``.

    Reasons are small fixed sets (metric labels); the first loss of each reason is logged with
    ``what`` and ``detail``, later ones only counted, so an outage never floods the logs.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter

    def count(self, signal: str, reason: str, count: int = 1, *, what: str = "", detail: str = "") -> None:
        if count <= 0:
            return
        with contained("drop counting"):
            self._counter.add(count, {"signal": signal, "reason": reason})
        log_once(
            f"drop:{signal}:{reason}",
            logging.WARNING,
            "otel_gatewayz: %s (%s%s); further drops are counted in "
            'gatewayz_telemetry_dropped_total{signal="%s"}, not logged',
            what or f"{signal} dropped",
            reason,
            f": {detail}" if detail else "",
            signal,
        )
