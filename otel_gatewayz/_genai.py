"""LLM provider metrics (OpenTelemetry gen_ai conventions) from the httpx hooks.

Duration covers the whole call; for a streamed response it ends when the stream closes, and
the time to the first chunk is taken when the first body chunk arrives (not the headers, which
some providers send before any token).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ._context import RequestState
from ._log import contained
from ._runtime import runtime

_timed_classes: dict[type, type] = {}


def _label(value: Any) -> str:
    """A user-supplied name fit for a metric label: empty (so ``other``) if it holds a secret."""
    text = str(value or "")
    return text if runtime().scrubber.scrub_text(text) == text else ""


def call_attributes(state: RequestState, error_type: str | None = None) -> dict[str, str]:
    instruments = runtime().instruments
    attributes = {
        "gen_ai.provider.name": instruments.providers(_label(state.request.get("provider"))),
        "gen_ai.request.model": instruments.models(_label(state.request.get("model"))),
        "gen_ai.operation.name": "chat",
    }
    if error_type:
        attributes["error.type"] = error_type
    return attributes


def record_call(state: RequestState, duration: float, error_type: str | None = None) -> None:
    runtime().instruments.operation_duration.record(duration, call_attributes(state, error_type))


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


def watch_stream(stream: Any, state: RequestState, started: float, error_type: str | None) -> bool:
    """Time the first chunk and the end of a streamed body; False if the stream can't be watched."""
    with contained("stream timing"):
        done = False

        def first() -> None:
            with contained("time to first chunk"):
                runtime().instruments.time_to_first_chunk.record(
                    time.perf_counter() - started, call_attributes(state, error_type)
                )

        def end() -> None:
            nonlocal done
            if not done:
                done = True
                with contained("stream duration"):
                    record_call(state, time.perf_counter() - started, error_type)

        stream.__class__ = _timed_class(type(stream))
        stream._ogz_first, stream._ogz_end = first, end
        return True
    return False
