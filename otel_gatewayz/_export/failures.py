"""Metric and log exports that fail: each lost export counted by reason and logged once, like spans.

The OTLP metric and log exporters report on their module's logger: a warning per retry and an
error per lost export. During a collector outage that is a line every few seconds per signal.
This filter turns each lost export into ``gatewayz_telemetry_dropped_total{signal="metrics"|"logs"}``
(the unit is an export) and holds back the retry lines: an export that finally succeeds lost nothing.
"""

from __future__ import annotations

import logging
import threading

from .._metrics.drops import DropCounter
from .._safety.log import contained
from .reasons import reason_of

# The exporters' module loggers, by the signal they export.
EXPORTER_LOGGERS = {
    "opentelemetry.exporter.otlp.proto.http.metric_exporter": "metrics",
    "opentelemetry.exporter.otlp.proto.http._log_exporter": "logs",
}
_LOST = ("Failed to export", "Failed to encode", "Dropping metrics batch")
_MAX_RETRIES_KEPT = 8
_RETRYING = ("Transient error", "Shutdown in progress, aborting retry")


class ExportFailureFilter(logging.Filter):
    """Counts an exporter's lost exports and holds back its per-export and per-retry lines."""

    def __init__(self, signal: str, drops: DropCounter) -> None:
        super().__init__()
        self._signal = signal
        self._drops = drops
        # The retry lines before a loss say why (a refused collector ends "due to timeout").
        self._retries = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not isinstance(record.msg, str):
            return True
        retries: list[logging.LogRecord] = getattr(self._retries, "records", None) or []
        if record.msg.startswith(_RETRYING):
            self._retries.records = [*retries, record][-_MAX_RETRIES_KEPT:]
            return False
        if not record.msg.startswith(_LOST):
            return True
        self._retries.records = []
        with contained(f"{self._signal} export drop counting"):
            reason, detail = reason_of([*retries, record])
            self._drops.count(self._signal, reason, what=f"{self._signal} export lost", detail=detail)
        return False


def count_export_failures(drops: DropCounter) -> None:
    """Attach the filter to the metric and log exporters' loggers (once per logger)."""
    for name, signal in EXPORTER_LOGGERS.items():
        exporter_logger = logging.getLogger(name)
        if not any(isinstance(f, ExportFailureFilter) for f in exporter_logger.filters):
            exporter_logger.addFilter(ExportFailureFilter(signal, drops))
