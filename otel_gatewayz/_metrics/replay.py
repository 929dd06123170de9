"""A dead process's journaled measurements, as the Prometheus families its snapshot would have had.

The deltas after the snapshot's mark are aggregated as the SDK aggregates (cumulative sums; the
same bucket boundaries and ``bisect_left`` placement), wrapped in the SDK's public export data
classes with the process's resource, and translated by the exporter's own code: family names,
unit suffixes, ``otel_scope_*`` and resource labels come out exactly as in the snapshot, so
:func:`~.merge.merge` adds them up.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as Family

from .journal import Deltas, Series

Translate = Callable[[MetricsData], list[Family]]
_CUMULATIVE = AggregationTemporality.CUMULATIVE


class _Histogram:
    def __init__(self, boundaries: tuple[float, ...]) -> None:
        self.boundaries = boundaries
        self.counts = [0] * (len(boundaries) + 1)
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.boundaries, value)] += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)


def _totals(deltas: Deltas) -> dict[int, float | _Histogram]:
    totals: dict[int, float | _Histogram] = {}
    for series_id, value in deltas.entries:
        described = deltas.series[series_id]
        if described.kind == "histogram":
            histogram = totals.get(series_id)
            if not isinstance(histogram, _Histogram):
                histogram = totals[series_id] = _Histogram(described.boundaries or ())
            histogram.add(value)
        else:
            counted = totals.get(series_id, 0.0)
            totals[series_id] = (counted if isinstance(counted, float) else 0.0) + value
    return totals


def _point(described: Series, total: float | _Histogram, now: int) -> NumberDataPoint | HistogramDataPoint:
    if isinstance(total, _Histogram):
        return HistogramDataPoint(
            attributes=described.attributes,
            start_time_unix_nano=now,
            time_unix_nano=now,
            count=sum(total.counts),
            sum=total.sum,
            bucket_counts=tuple(total.counts),
            explicit_bounds=total.boundaries,
            min=total.min,
            max=total.max,
        )
    return NumberDataPoint(attributes=described.attributes, start_time_unix_nano=now, time_unix_nano=now, value=total)


def metrics_data(deltas: Deltas, now: int = 0) -> MetricsData:
    """The deltas as the SDK's export data: one scope per instrumentation scope, one metric per instrument."""
    scopes: dict[str, tuple[Series, dict[tuple[str, str, str, str], list[Any]]]] = {}
    for series_id, total in _totals(deltas).items():
        described = deltas.series[series_id]
        _, metrics = scopes.setdefault(repr(described.scope), (described, {}))
        key = (described.name, described.kind, described.unit, described.description)
        metrics.setdefault(key, []).append(_point(described, total, now))
    scope_metrics = []
    for first, metrics in scopes.values():
        name, version, schema_url, attributes = first.scope
        built = []
        for (metric_name, kind, unit, description), points in metrics.items():
            data: Histogram | Sum = (
                Histogram(data_points=points, aggregation_temporality=_CUMULATIVE)
                if kind == "histogram"
                else Sum(data_points=points, aggregation_temporality=_CUMULATIVE, is_monotonic=True)
            )
            built.append(Metric(name=metric_name, description=description, unit=unit, data=data))
        scope = InstrumentationScope(name, version, schema_url, attributes or None)
        scope_metrics.append(ScopeMetrics(scope=scope, metrics=built, schema_url=schema_url or ""))
    resource = ResourceMetrics(resource=Resource(deltas.resource), scope_metrics=scope_metrics, schema_url="")
    return MetricsData(resource_metrics=[resource])


def replay(deltas: Deltas, translate: Translate) -> list[Family]:
    """The Prometheus families of ``deltas``, through the exporter's translation."""
    if not deltas.entries:
        return []
    return translate(metrics_data(deltas))
