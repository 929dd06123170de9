"""Provider response bodies watched as they pass: the first chunk, every chunk, and the end.

httpx exposes a response's body as ``response.stream``; swapping its class for a subclass is the
only hook on chunk arrival (guarded by a test for each installed httpx). The chunks go on to the
client as they came: a watcher sees each one, never holds it back, never changes a byte. One swap
per stream serves every watcher (timing, token usage).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .._safety.log import log_once

__all__ = ["BodyWatch", "watch_body"]

_watched_classes: dict[type, type] = {}


class BodyWatch:
    """Callbacks for one body: ``first`` chunk, each ``chunk``, and its ``end`` (called once).

    A failing callback is dropped and logged once; the body flows on.
    """

    __slots__ = ("_done", "_ends", "_firsts", "_readers", "_started")

    def __init__(self) -> None:
        self._firsts: list[Callable[[], None]] = []
        self._readers: list[Callable[[bytes], None]] = []
        self._ends: list[Callable[[], None]] = []
        self._started = False
        self._done = False

    def on_first(self, callback: Callable[[], None]) -> None:
        self._firsts.append(callback)

    def on_chunk(self, reader: Callable[[bytes], None]) -> None:
        self._readers.append(reader)

    def on_end(self, callback: Callable[[], None]) -> None:
        self._ends.append(callback)

    def chunk(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            _run_each(self._firsts, "first chunk")
        for reader in self._readers:
            try:
                reader(data)
            except Exception:  # noqa: BLE001 - a failing reader stops reading; the body flows on
                log_once("body-reader", logging.ERROR, "otel_gatewayz: reading a response body failed", exc_info=True)
                self._readers = [r for r in self._readers if r is not reader]
                break

    def end(self) -> None:
        if not self._done:
            self._done = True
            _run_each(self._ends, "body end")


def _run_each(callbacks: list[Callable[[], None]], what: str) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - telemetry never breaks the body
            log_once(f"body-{what}", logging.ERROR, "otel_gatewayz: %s callback failed", what, exc_info=True)


def watch_body(stream: Any) -> BodyWatch | None:
    """The watch of ``stream`` (the one already there, or a new one); None if it can't be watched."""
    existing = getattr(stream, "_ogz_watch", None)
    if isinstance(existing, BodyWatch):
        return existing
    try:
        watch = BodyWatch()
        stream.__class__ = _watched_class(type(stream))
        stream._ogz_watch = watch
        return watch
    except Exception:  # noqa: BLE001 - a stream class we cannot subclass: not watched
        log_once("body-watch", logging.WARNING, "otel_gatewayz: a response body could not be watched", exc_info=True)
        return None


def _watched_class(base: type) -> type:
    """A subclass of the response stream's class that reports its chunks and its end."""
    if base in _watched_classes:
        return _watched_classes[base]

    class Watched(base):  # type: ignore[misc]
        _ogz_watch: BodyWatch

        def __iter__(self) -> Iterator[bytes]:
            watch = self._ogz_watch
            for chunk in super().__iter__():
                watch.chunk(chunk)
                yield chunk
            watch.end()  # the whole body passed: its end is known before the client closes it

        async def __aiter__(self) -> AsyncIterator[bytes]:
            watch = self._ogz_watch
            async for chunk in super().__aiter__():
                watch.chunk(chunk)
                yield chunk
            watch.end()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._ogz_watch.end()

        async def aclose(self) -> None:
            try:
                await super().aclose()
            finally:
                self._ogz_watch.end()

    _watched_classes[base] = Watched
    return Watched
