"""LLM provider metrics (OpenTelemetry gen_ai conventions) from the httpx hooks.

Duration covers the whole call; for a streamed response it ends when the stream closes, and
the time to the first chunk is taken when the first body chunk arrives (not the headers, which
some providers send before any token).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from .._privacy.scrubber import Scrubber
from .._safety.log import contained
from .instruments import Instruments

_timed_classes: dict[type, type] = {}


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

    def watch_stream(self, stream: Any, request: Mapping[str, Any], started: float, error_type: str | None) -> bool:
        """Time the first chunk and the end of a streamed body; False if the stream can't be watched."""
        with contained("stream timing"):
            done = False

            def first() -> None:
                with contained("time to first chunk"):
                    self._instruments.time_to_first_chunk.record(
                        time.perf_counter() - started, self.call_attributes(request, error_type)
                    )

            def end() -> None:
                nonlocal done
                if not done:
                    done = True
                    with contained("stream duration"):
                        self.record_call(request, time.perf_counter() - started, error_type)

            # httpx exposes the body as ``response.stream``; swapping its class to a subclass is the
            # only hook on chunk arrival (guarded by a test for each installed httpx).
            stream.__class__ = _timed_class(type(stream))
            stream._ogz_first, stream._ogz_end = first, end
            return True
        return False


def _timed_class(base: type) -> type:
    """A subclass of the response stream's class that reports its first chunk and its end."""
    if base in _timed_classes:
        return _timed_classes[base]

    class Timed(base):  # type: ignore[misc]
        _ogz_first: Callable[[], None]
        _ogz_end: Callable[[], None]

        def __iter__(self) -> Iterator[bytes]:
            for i, chunk in enumerate(super().__iter__()):
                if i == 0:
                    self._ogz_first()
                yield chunk

        async def __aiter__(self) -> AsyncIterator[bytes]:
            first = True
            async for chunk in super().__aiter__():
                if first:
                    first = False
                    self._ogz_first()
                yield chunk

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._ogz_end()

        async def aclose(self) -> None:
            try:
                await super().aclose()
            finally:
                self._ogz_end()

    _timed_classes[base] = Timed
    return Timed
