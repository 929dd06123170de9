"""Our own instruments, created once and handed to whatever records into them.

Labels are bounded: routes are templates, categories and impacts are fixed sets, model,
provider and plan names pass through label sets that follow recent traffic with an ``other``
overflow value (:mod:`.bounded`), and only names a provider has served (a successful answer)
count as traffic, so made-up names that clients send cannot push a real model out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .bounded import OVERFLOW, BoundedValues
from .drops import DropCounter

__all__ = ["LATENCY_BUCKETS", "MAX_MODELS", "MAX_PLANS", "MAX_PROVIDERS", "OVERFLOW", "BoundedValues", "Instruments"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_MODELS = 100
MAX_PROVIDERS = 20
MAX_PLANS = 20


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
        # Spend (issue 24): every provider call's tokens and dollar cost, by provider, model, plan
        # and operation; never by user (per-user cost is on the request's spans only).
        self.tokens = meter.create_counter(
            "gatewayz.gen_ai.tokens",
            unit="{token}",
            description="Tokens of provider calls as the provider reported them, by gen_ai.token.type "
            "(input includes cache_read and cache_write; output includes reasoning).",
        )
        self.cost = meter.create_counter(
            "gatewayz.gen_ai.cost.usd",
            unit="{USD}",
            description="Dollar cost of provider calls, priced with genai-prices or GATEWAYZ_PRICES_FILE.",
        )
        self.unpriced = meter.create_counter(
            "gatewayz.gen_ai.unpriced_calls",
            unit="{call}",
            description="Provider calls with token usage but no known price (unknown model or provider): "
            "their tokens are counted, their cost is not guessed.",
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
        self.plans = BoundedValues(MAX_PLANS)
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
