"""Span processors contained: a bug in one of ours is logged once, never raised into a span's start or end."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from .log import contained


class ContainedSpanProcessor(SpanProcessor):
    """Wraps one of our processors; each hook is contained.

    ``_on_ending`` is the SDK's hook before a span is frozen, called by its multi-processor;
    it is forwarded so wrapped processors keep it. The containers are made once (they hold
    only their name): every span passes through three of them.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner
        self._name = name = type(inner).__name__
        self._start = contained(f"span processor {name}.on_start")
        self._ending = contained(f"span processor {name}._on_ending")
        self._end = contained(f"span processor {name}.on_end")

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._start:
            self._inner.on_start(span, parent_context)

    def _on_ending(self, span: Any) -> None:
        with self._ending:
            self._inner._on_ending(span)

    def on_end(self, span: Any) -> None:
        with self._end:
            self._inner.on_end(span)

    def shutdown(self) -> None:
        with contained(f"span processor {self._name}.shutdown"):
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with contained(f"span processor {self._name}.force_flush"):
            return self._inner.force_flush(timeout_millis)
        return False
