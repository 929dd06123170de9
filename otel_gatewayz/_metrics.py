"""Our own instruments, and the Prometheus endpoint with resource labels on every series.

Labels are bounded: routes are templates, categories and impacts are fixed sets, model names
pass through a cardinality limit with an ``other`` overflow value.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, REGISTRY, start_http_server
from prometheus_client.metrics_core import Metric

from ._log import logger

RESOURCE_LABELS = frozenset({"service.name", "deployment.environment.name", "service.version"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_MODELS = 100
MAX_PROVIDERS = 20
OVERFLOW = "other"
# Model names look like "gpt-4o", "anthropic/claude-3.5-sonnet:beta"; anything else (spaces,
# keys, long strings) is not let into a label.
_LABEL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")


class BoundedValues:
    """Passes the first ``limit`` distinct values through and maps the rest to ``other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value or len(value) > 64 or not _LABEL_SAFE.fullmatch(value):
            return OVERFLOW
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OVERFLOW


class Instruments:
    """The distro's metrics; created once the meter provider exists."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.errors = meter.create_counter(
            "gatewayz.errors", unit="{error}", description="Errors captured, by fingerprint category and user impact."
        )
        self.error_groups = meter.create_counter(
            "gatewayz.error_groups", unit="{group}",
            description="Error fingerprints seen for the first time by this process.",
        )
        self.dropped = meter.create_counter(
            "gatewayz.telemetry.dropped", unit="{item}",
            description="Telemetry items dropped (queue full, export failure, rate limit), by signal and reason.",
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of LLM provider calls.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time from a streamed provider request to its first chunk.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self._started = time.time()
        meter.create_observable_gauge(
            "gatewayz.release.info", callbacks=[self._release_info], unit="1",
            description="1 per process; its resource labels name the release that runs.",
        )
        self.models = BoundedValues(MAX_MODELS)
        self.providers = BoundedValues(MAX_PROVIDERS)
        self._fingerprints: set[int] = set()
        self._fp_lock = threading.Lock()

    def _release_info(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1)]

    def first_time(self, fingerprint: tuple[str, ...]) -> bool:
        """True the first time this process sees ``fingerprint`` (bounded memory)."""
        key = hash(fingerprint)
        with self._fp_lock:
            if key in self._fingerprints or len(self._fingerprints) >= 10_000:
                return False
            self._fingerprints.add(key)
            return True


class GatewayzPrometheusReader(PrometheusMetricReader):
    """Serves ``/metrics`` with ``service_name``, ``deployment_environment_name`` and
    ``service_version`` on every series, on the standard host/port variables.

    A port that is already taken does not stop the app: the endpoint is skipped with one
    error line naming the variable.
    """

    def __init__(self) -> None:
        super().__init__(resource_attribute_filter=lambda key: key in RESOURCE_LABELS)
        from ._runtime import runtime

        settings = runtime().settings
        label_default_collectors({"service_name": settings.service_name,
                                  "deployment_environment_name": settings.environment,
                                  "service_version": settings.release_sha})
        host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
        raw_port = os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
        try:
            port = int(raw_port)
            start_http_server(port=port, addr=host)
        except ValueError:
            logger.error("otel_gatewayz: OTEL_EXPORTER_PROMETHEUS_PORT: %r is not a port number; "
                         "the Prometheus endpoint is disabled", raw_port)
        except OSError as exc:
            logger.error("otel_gatewayz: OTEL_EXPORTER_PROMETHEUS_PORT: cannot listen on %s:%s (%s); "
                         "the Prometheus endpoint is disabled", host, raw_port, exc.strerror)
        else:
            logger.log(logging.INFO, "otel_gatewayz: Prometheus metrics on http://%s:%s/metrics", host, port)


class _Labelled:
    """A prometheus_client collector whose samples get the resource labels too."""

    def __init__(self, inner: Any, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterable[Metric]:
        for family in self._inner.collect():
            family.samples = [sample._replace(labels={**sample.labels, **self._labels}) for sample in family.samples]
            yield family


def label_default_collectors(labels: dict[str, str]) -> None:
    """Give prometheus_client's process/platform/GC series the same resource labels as ours."""
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            REGISTRY.unregister(collector)
        except KeyError:
            continue
        REGISTRY.register(_Labelled(collector, labels))
