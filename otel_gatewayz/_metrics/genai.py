"""LLM provider metrics (OpenTelemetry gen_ai conventions) from the httpx hooks.

Duration covers the whole call; for a streamed response it ends when the stream closes, and
the time to the first chunk is taken when the first body chunk arrives (not the headers, which
some providers send before any token).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .._privacy.scrubber import Scrubber
from .bodies import BodyWatch
from .instruments import Instruments


class GenAiMetrics:
    """Records provider calls into the gen_ai instruments, with bounded, secret-free labels.

    ``request`` is the request context the app set (``model``, ``provider``).
    """

    def __init__(self, instruments: Instruments, scrubber: Scrubber) -> None:
        self._instruments = instruments
        self._scrubber = scrubber

    def label(self, value: Any) -> str:
        """A user-supplied name fit for a metric label: empty (so ``other``) if it holds a secret."""
        text = str(value or "")
        return text if self._scrubber.scrub_text(text) == text else ""

    def call_attributes(self, request: Mapping[str, Any], error_type: str | None = None) -> dict[str, str]:
        provider, model = self.label(request.get("provider")), self.label(request.get("model"))
        providers, models = self._instruments.providers, self._instruments.models
        if error_type is None:  # the provider served this model: it may take a label slot
            providers.admit(provider)
            models.admit(model)
        attributes = {
            "gen_ai.provider.name": providers(provider),
            "gen_ai.request.model": models(model),
            "gen_ai.operation.name": "chat",
        }
        if error_type:
            attributes["error.type"] = error_type
        return attributes

    def record_call(self, request: Mapping[str, Any], duration: float, error_type: str | None = None) -> None:
        self._instruments.operation_duration.record(duration, self.call_attributes(request, error_type))

    def watch_stream(
        self, watch: BodyWatch, request: Mapping[str, Any], started: float, error_type: str | None
    ) -> None:
        """Time the first chunk and the end of a streamed body as it passes."""

        def first() -> None:
            self._instruments.time_to_first_chunk.record(
                time.perf_counter() - started, self.call_attributes(request, error_type)
            )

        def end() -> None:
            self.record_call(request, time.perf_counter() - started, error_type)

        watch.on_first(first)
        watch.on_end(end)
