"""Our own instruments, created once and handed to whatever records into them.

Labels are bounded: routes are templates, categories and impacts are fixed sets, model and
provider names pass through a cardinality limit with an ``other`` overflow value, and only
names a provider has served (a successful answer) take a slot, so made-up names that clients
send cannot push a real model out.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .drops import DropCounter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_MODELS = 100
MAX_PROVIDERS = 20
OVERFLOW = "other"
# Model names look like "gpt-4o", "anthropic/claude-3.5-sonnet:beta"; anything else (spaces,
# keys, long strings) is not let into a label.
_LABEL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")


class BoundedValues:
    """Passes admitted values through (at most ``limit`` of them) and maps the rest to ``other``.

    A value is admitted by :meth:`admit`, called once a provider has served it: a name a client
    made up is answered with an error and never takes a slot.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _fit(value: str | None) -> bool:
        return bool(value) and len(value or "") <= 64 and _LABEL_SAFE.fullmatch(value or "") is not None

    def admit(self, value: str | None) -> None:
        """Give ``value`` a slot if one is free (a provider served it)."""
        if value in self._seen or not self._fit(value):  # only fit values are ever seen: the cheap test first
            return
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value or "")

    def __call__(self, value: str | None) -> str:
        return value if value and value in self._seen else OVERFLOW


class Instruments:
    """The distro's metrics; created once the meter provider exists."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.errors = meter.create_counter(
            "gatewayz.errors", unit="{error}", description="Errors captured, by fingerprint category and user impact."
        )
        self.error_groups = meter.create_counter(
            "gatewayz.error_groups",
            unit="{group}",
            description="Error fingerprints seen for the first time by this process.",
        )
        self.drops = DropCounter(
            meter.create_counter(
                "gatewayz.telemetry.dropped",
                unit="{item}",
                description="Telemetry items dropped (queue full, export failure, rate limit), by signal and reason.",
            )
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of LLM provider calls.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from a streamed provider request to its first chunk.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self._started = time.time()
        meter.create_observable_gauge(
            "gatewayz.release.info",
            callbacks=[self._release_info],
            unit="1",
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
