"""Span export: scrubbed before any exporter sees it, every lost span counted, shutdown bounded.

Scrubbing runs on the export thread, so the request path never pays for it, and once per span
for every sender (:class:`CleanSpans`: the Sentry transaction builder reuses the copy). The SDK loses spans
in three places without telling the operator much: the batch processor's queue overflows (one
warning every 20 s), the exporter fails (logged per batch and per retry), and shutdown gives up
on what is still queued (silently). Each is counted in
``gatewayz_telemetry_dropped_total{signal="spans"}`` by reason, and logged once per reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .._metrics.drops import DropCounter
from .._privacy.spans import CleanSpans
from .._safety.background import in_background
from .._safety.log import contained, log_once
from .reasons import CAPTURE, QueueFullFilter, exporter_loggers, reason_of

SIGNAL = "spans"
# The SDK's batch processor warns "Queue full, dropping Span." on this logger.
_BATCH_LOGGER = "opentelemetry.sdk._shared_internal"
_QUEUE_FULL_FILTER = QueueFullFilter()


def _count(drops: DropCounter, count: int, reason: str, detail: str = "", signal: str = SIGNAL) -> None:
    drops.count(signal, reason, count, what=f"{signal} dropped", detail=detail)


class ScrubbingSpanExporter(SpanExporter):
    """Wraps an exporter so that nothing unscrubbed reaches it and every failed span is counted.

    Why a batch failed is read from what the exporter logs during it, once the install step has
    put the capturing filter on its loggers (:func:`read_failure_lines`); without, it is
    ``export_failed``.
    """

    def __init__(self, inner: SpanExporter, clean: CleanSpans, drops: DropCounter, signal: str = SIGNAL) -> None:
        self.inner = inner
        self.signal = signal  # what its lost spans are counted as
        self._clean = clean
        self._drops = drops

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean: list[ReadableSpan] = []
        for span in spans:
            try:
                clean.append(self._clean(span))
            except Exception:  # noqa: BLE001 - never export what we could not scrub
                log_once(
                    "span-scrub",
                    logging.ERROR,
                    "otel_gatewayz: scrubbing a span failed; it is dropped, never exported unscrubbed",
                    exc_info=True,
                )
                _count(self._drops, 1, "scrub_failed", signal=self.signal)
        if not clean:
            return SpanExportResult.SUCCESS if not spans else SpanExportResult.FAILURE
        with CAPTURE.capturing() as records:
            try:
                result = self.inner.export(clean)
            except Exception as exc:  # noqa: BLE001 - the batch is lost, the export thread goes on
                log_once(
                    "span-export-exception", logging.ERROR, "otel_gatewayz: the span exporter raised", exc_info=True
                )
                _count(self._drops, len(clean), "exporter_error", type(exc).__name__, self.signal)
                return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            reason, detail = reason_of(records)
            _count(self._drops, len(clean), reason, detail, self.signal)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting queue overflows and bounding shutdown.

    Shutdown waits at most ``GATEWAYZ_SHUTDOWN_TIMEOUT`` (the SDK's default is 30 s per
    processor, plus the exporter's own timeout), then counts what it had to leave behind. The
    queue's length and bound are SDK internals (``_batch_processor._queue``, ``_max_queue_size``),
    read because the SDK exposes neither; a test fails if they move.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        drops: DropCounter,
        shutdown_timeout: float,
        *args: Any,
        signal: str = SIGNAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(exporter, *args, **kwargs)
        self._drops = drops
        self._shutdown_timeout = shutdown_timeout
        self.signal = signal

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self._queued() >= self._capacity():
            _count(self._drops, 1, "queue_full", signal=self.signal)
        super().on_end(span)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, waiting at most ``timeout_millis`` (the SDK's own call ignores it)."""
        timeout = self._shutdown_timeout if timeout_millis is None else timeout_millis / 1000
        flush: Any = super().force_flush
        return in_background("span flush", lambda: flush(timeout_millis)).wait(timeout)

    def shutdown(self) -> None:
        processor: Any = getattr(self, "_batch_processor", None)
        try:
            processor.shutdown(timeout_millis=int(self._shutdown_timeout * 1000))
        except (AttributeError, TypeError):  # another SDK version: its own bound
            fallback: Any = super().shutdown
            fallback()
            return
        _count(self._drops, self._queued(), "shutdown_timeout", signal=self.signal)

    def _queued(self) -> int:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def _capacity(self) -> int:
        capacity = getattr(getattr(self, "_batch_processor", None), "_max_queue_size", None)
        return capacity if isinstance(capacity, int) and capacity > 0 else 1 << 62


def read_failure_lines(exporter: ScrubbingSpanExporter) -> None:
    """Let ``exporter`` read why an export failed: the capturing filter on the wrapped exporter's loggers."""
    with contained("exporter log filter"):
        for exporter_logger in exporter_loggers(exporter.inner):
            exporter_logger.addFilter(CAPTURE)


def scrubbed_batch_processor_factory(
    clean: CleanSpans, drops: DropCounter, shutdown_timeout: float
) -> Callable[..., BatchSpanProcessor]:
    """The SDK configurator's ``export_span_processor`` hook, bound to what it uses."""

    def build(exporter: SpanExporter, *args: Any, **kwargs: Any) -> BatchSpanProcessor:
        with contained("batch processor log filter"):
            logging.getLogger(_BATCH_LOGGER).addFilter(_QUEUE_FULL_FILTER)
        scrubbing = ScrubbingSpanExporter(exporter, clean, drops)
        read_failure_lines(scrubbing)
        return CountingBatchSpanProcessor(scrubbing, drops, shutdown_timeout, *args, **kwargs)

    return build
