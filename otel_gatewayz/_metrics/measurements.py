"""One hook on every synchronous measurement of the SDK's meter provider, before it is aggregated.

The SDK offers no plug point between an instrument and its aggregation: instruments call
``provider._measurement_consumer.consume_measurement(Measurement(...))`` (SDK internals, each
guarded by a test in tests/unit/test_internals.py). Shadowing that method on the consumer
instance reaches every instrument, made before or after. The hook rewrites labels (bounded
model names) and journals cumulative series (durable counts); each concern is its own module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics._internal.aggregation import (
    _DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES as _DEFAULT_BOUNDARIES,
)
from opentelemetry.sdk.metrics._internal.measurement import Measurement

from .._safety.log import log_once, logger

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["Measurement", "Rewrite", "histogram_boundaries", "install_measurement_hook"]

Rewrite = Callable[[Measurement], Measurement]
Consume = Callable[[Measurement], None]


def histogram_boundaries(instrument: object) -> Sequence[float]:
    """The bucket boundaries the SDK's default aggregation uses for ``instrument``: its advice, or the default."""
    advisory = getattr(instrument, "_advisory", None)
    boundaries = getattr(advisory, "explicit_bucket_boundaries", None)
    return tuple(boundaries) if boundaries is not None else tuple(_DEFAULT_BOUNDARIES)


def resource_of(provider: object) -> Mapping[str, Any]:
    """The meter provider's resource attributes (the SDK keeps them in its configuration)."""
    resource = getattr(getattr(provider, "_sdk_config", None), "resource", None)
    return dict(resource.attributes) if resource is not None else {}


def install_measurement_hook(provider: object, rewrite: Rewrite, journal: Journal | None = None) -> bool:
    """Route every synchronous measurement of ``provider`` through ``rewrite`` and then ``journal``.

    Installed once per provider (a second call is a no-op). False if the SDK changed shape.
    """
    consumer = getattr(provider, "_measurement_consumer", None)
    original: Consume | None = getattr(consumer, "consume_measurement", None)
    if consumer is None or original is None:
        logger.error("otel_gatewayz: the SDK's measurement consumer moved; model labels of SDK calls are not bounded")
        return False
    if "consume_measurement" in vars(consumer):
        return True
    if journal is not None:
        journal.resource = resource_of(provider)
    sdk_consume: Consume = original

    def consume(measurement: Measurement) -> None:
        try:
            measurement = rewrite(measurement)
        except Exception:  # noqa: BLE001 - a failing rewrite leaves the measurement as it came
            log_once("measurement-rewrite", logging.ERROR, "otel_gatewayz: relabelling failed", exc_info=True)
        if journal is None:
            sdk_consume(measurement)
        else:
            journal.consume(measurement, sdk_consume)

    consumer.consume_measurement = consume
    return True
