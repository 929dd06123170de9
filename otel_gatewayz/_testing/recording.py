"""What the in-process distro sent, kept for a test to read: Sentry envelopes and metric points.

The Sentry transport is the SDK's own extension point, so everything our pipeline does up to the
wire (hooks, grouping, scrubbing, envelope headers) has run on what it records; the payloads are
read back as the JSON Sentry would receive.
"""

from __future__ import annotations

import json
import threading
from typing import Any, NamedTuple

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, HistogramDataPoint, InMemoryMetricReader
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

__all__ = ["MetricPoint", "RecordingTransport", "metric_points"]


class RecordingTransport(Transport):
    """A Sentry transport that keeps every envelope it is handed (from any thread), and sends nothing."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._lock = threading.Lock()
        self._envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        with self._lock:
            self._envelopes.append(envelope)

    def envelopes(self) -> list[Envelope]:
        with self._lock:
            return list(self._envelopes)

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        """The JSON payload of every recorded item of ``item_type`` (``event``, ``transaction``, ``sessions``...)."""
        payloads: list[dict[str, Any]] = []
        for envelope in self.envelopes():
            for item in envelope.items:
                if item.type == item_type:
                    payloads.append(json.loads(item.get_bytes()))
        return payloads

    def flush(self, timeout: float, callback: Any = None) -> None:
        return None

    def kill(self) -> None:
        return None


class MetricPoint(NamedTuple):
    """One data point: a counter's or gauge's value, a histogram's sum and count."""

    name: str
    attributes: dict[str, Any]
    value: float
    samples: int | None = None  # how many measurements a histogram point holds; None for the others

    @property
    def labels(self) -> dict[str, Any]:
        """The attributes, as the series' labels (the same thing, named as Prometheus users look for it)."""
        return self.attributes


def metric_points(reader: InMemoryMetricReader, name: str | None = None) -> list[MetricPoint]:
    """Every data point the reader collects now (of metric ``name`` only, when given)."""
    points: list[MetricPoint] = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if name is not None and metric.name != name:
                    continue
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if isinstance(point, (HistogramDataPoint, ExponentialHistogramDataPoint)):
                        points.append(MetricPoint(metric.name, attributes, point.sum, point.count))
                    else:
                        points.append(MetricPoint(metric.name, attributes, point.value))
    return points
