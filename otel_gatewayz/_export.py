"""Scrub spans just before any exporter sees them, make every lost span visible, flush on shutdown.

Scrubbing runs on the export thread, so the request path never pays for it. The SDK loses spans
in three places without telling the operator much: the batch processor's queue overflows (one
warning every 20 s), the exporter fails (the OTLP exporter logs every failed batch and every
retry: a collector outage floods the logs), and shutdown gives up on what is still queued
(silently). Each of these is counted here in ``gatewayz_telemetry_dropped_total{signal="spans"}``
by reason, and logged once per reason; the upstream per-batch lines are folded into that one line.

:func:`flush_pending` is the bounded flush for a graceful shutdown: uvicorn (>= 0.29) re-raises
SIGTERM after its own graceful shutdown with the default handler back in place, so the process
dies of the signal and no ``atexit`` hook runs (sentry-sdk's flush, the TracerProvider's
shutdown); whatever was still queued is lost unless it is flushed before that, e.g. at the end
of the ASGI lifespan.
"""

from __future__ import annotations

import contextlib
import functools
import http
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sentry_sdk
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from ._log import contained, log_once
from ._runtime import runtime
from ._scrub import ScrubReport

SIGNAL = "spans"
# Loggers the OTLP exporters report failures on besides their own module's.
_EXTRA_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.common.http",)
# The SDK's batch processor warns "Queue full, dropping Span." on this logger.
_BATCH_LOGGER = "opentelemetry.sdk._shared_internal"
_NOT_EXPORTERS = frozenset({"builtins", "abc", "typing"})
_MAX_CAPTURED = 8
_MAX_DETAIL = 200
_PHRASES = {status.phrase: status.value for status in http.HTTPStatus}


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` whose attributes, events, links and status text are scrubbed."""
    scrubber = runtime().scrubber
    report = ScrubReport()
    attributes: dict[str, Any] = scrubber.scrub(dict(span.attributes or {}), report)
    events = [
        Event(
            scrubber.scrub_text(event.name, report, "event"),
            scrubber.scrub(dict(event.attributes or {}), report),
            event.timestamp,
        )
        for event in span.events
    ]
    links = [Link(link.context, scrubber.scrub(dict(link.attributes or {}), report)) for link in span.links]
    status = span.status
    if status.description:
        status = Status(status.status_code, scrubber.scrub_text(status.description, report, "status"))
    if report.count:
        attributes["gatewayz.scrubbed.count"] = report.count
    return ReadableSpan(
        name=scrubber.scrub_text(span.name, report, "name"),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def count_dropped(count: int, reason: str, detail: str = "") -> None:
    """Count ``count`` lost spans under ``reason`` and log the first loss of each reason."""
    if count <= 0:
        return
    with contained("span drop counting"):
        runtime().instruments.dropped.add(count, {"signal": SIGNAL, "reason": reason})
    log_once(
        f"span-drop:{reason}",
        logging.WARNING,
        "otel_gatewayz: spans dropped (%s%s); further drops are counted in "
        'gatewayz_telemetry_dropped_total{signal="spans"}, not logged',
        reason,
        f": {detail}" if detail else "",
    )


class _ExportLogCapture(logging.Filter):
    """Holds back an exporter's warnings and errors while our ``export`` call runs on this thread.

    They become one counted reason and one log line instead of a line per batch and per retry;
    the retry warnings of an export that finally succeeds are dropped (nothing was lost). Records
    logged outside our call (other threads, shutdown) pass untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            captured: list[logging.LogRecord] | None = getattr(self._local, "records", None)
            if captured is None or record.levelno < logging.WARNING:
                return True
            if len(captured) < _MAX_CAPTURED:
                captured.append(record)
            return False
        except Exception:  # noqa: BLE001 - a log filter must never break logging
            return True

    @contextlib.contextmanager
    def capturing(self) -> Iterator[list[logging.LogRecord]]:
        captured: list[logging.LogRecord] = []
        self._local.records = captured
        try:
            yield captured
        finally:
            self._local.records = None


class _QueueFullFilter(logging.Filter):
    """Drops the SDK's own "Queue full, dropping Span." warning: we count and log those drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Queue full, dropping %s." and record.args == ("Span",))


_CAPTURE = _ExportLogCapture()
_QUEUE_FULL_FILTER = _QueueFullFilter()


def _exporter_loggers(exporter: SpanExporter) -> list[logging.Logger]:
    """The loggers of the modules the exporter's classes come from (where exporters log)."""
    modules = {cls.__module__ for cls in type(exporter).__mro__ if cls is not SpanExporter} - _NOT_EXPORTERS
    return [logging.getLogger(name) for name in sorted(modules | set(_EXTRA_EXPORTER_LOGGERS))]


def _reason_of(records: Sequence[logging.LogRecord]) -> tuple[str, str]:
    """``(reason, detail)`` of a failed export from what the exporter logged during it.

    Reasons are a small fixed set (``http_<status>``, ``timeout``, ``unreachable``,
    ``export_failed``) so they can be metric labels.
    """
    reason = "export_failed"
    for record in records:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                reason = "timeout" if "timeout" in type(arg).__name__.lower() else "unreachable"
            elif isinstance(arg, str) and arg in _PHRASES:
                reason = f"http_{_PHRASES[arg]}"
            elif isinstance(arg, int) and not isinstance(arg, bool) and "code" in str(record.msg) and 100 <= arg <= 599:
                reason = f"http_{arg}"
        if reason == "export_failed" and "due to timeout" in str(record.msg):
            reason = "timeout"  # the first attempt used up the export timeout
    detail = ""
    if records:
        with contextlib.suppress(Exception):
            detail = records[0].getMessage()[:_MAX_DETAIL]
    return reason, detail


class ScrubbingSpanExporter(SpanExporter):
    """Wraps an exporter so that nothing unscrubbed reaches it and every failed span is counted."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        with contained("exporter log filter"):
            for exporter_logger in _exporter_loggers(inner):
                exporter_logger.addFilter(_CAPTURE)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean: list[ReadableSpan] = []
        for span in spans:
            try:
                clean.append(scrub_span(span))
            except Exception:  # noqa: BLE001 - never export what we could not scrub
                log_once(
                    "span-scrub",
                    logging.ERROR,
                    "otel_gatewayz: scrubbing a span failed; it is dropped, never exported unscrubbed",
                    exc_info=True,
                )
                count_dropped(1, "scrub_failed")
        if not clean:
            return SpanExportResult.SUCCESS if not spans else SpanExportResult.FAILURE
        with _CAPTURE.capturing() as records:
            try:
                result = self._inner.export(clean)
            except Exception as exc:  # noqa: BLE001 - the batch is lost, the export thread goes on
                log_once(
                    "span-export-exception", logging.ERROR, "otel_gatewayz: the span exporter raised", exc_info=True
                )
                count_dropped(len(clean), "exporter_error", type(exc).__name__)
                return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            count_dropped(len(clean), *_reason_of(records))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting queue overflows and bounding shutdown.

    Shutdown waits at most ``GATEWAYZ_SHUTDOWN_TIMEOUT`` (the SDK's default is 30 s per
    processor, plus the exporter's own timeout), then counts what it had to leave behind.
    """

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self._queued() >= self._capacity():
            count_dropped(1, "queue_full")
        super().on_end(span)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, waiting at most ``timeout_millis`` (the SDK's own call ignores it)."""
        timeout = runtime().settings.shutdown_timeout if timeout_millis is None else timeout_millis / 1000
        flush: Any = super().force_flush
        return in_background("span flush", lambda: flush(timeout_millis)).wait(timeout)

    def shutdown(self) -> None:
        timeout_millis = int(runtime().settings.shutdown_timeout * 1000)
        processor: Any = getattr(self, "_batch_processor", None)
        try:
            processor.shutdown(timeout_millis=timeout_millis)
        except (AttributeError, TypeError):  # another SDK version: its own bound
            fallback: Any = super().shutdown
            fallback()
            return
        count_dropped(self._queued(), "shutdown_timeout")

    def _queued(self) -> int:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def _capacity(self) -> int:
        capacity = getattr(getattr(self, "_batch_processor", None), "_max_queue_size", None)
        return capacity if isinstance(capacity, int) and capacity > 0 else 1 << 62


def scrubbed_batch_processor(exporter: SpanExporter, *args: Any, **kwargs: Any) -> BatchSpanProcessor:
    """The SDK configurator's ``export_span_processor`` hook."""
    with contained("batch processor log filter"):
        logging.getLogger(_BATCH_LOGGER).addFilter(_QUEUE_FULL_FILTER)
    return CountingBatchSpanProcessor(ScrubbingSpanExporter(exporter), *args, **kwargs)


def in_background(what: str, call: Callable[[], object]) -> threading.Event:
    """Run ``call`` on a daemon thread (contained); the event is set when it returns.

    For waits the SDK does not bound: the caller waits on the event as long as it wants, and a
    call stuck on a dead endpoint never holds the process up at exit.
    """
    done = threading.Event()

    def run() -> None:
        try:
            with contained(what):
                call()
        finally:
            done.set()

    threading.Thread(target=run, name=f"otel_gatewayz-{what.replace(' ', '-')}", daemon=True).start()
    return done


def flush_pending(timeout: float | None = None) -> bool:
    """Flush spans (and the Sentry transactions built from them) and metrics, then Sentry.

    Spans and metrics are flushed side by side within ``timeout`` seconds (default
    ``GATEWAYZ_SHUTDOWN_TIMEOUT``), then Sentry within as long again: however slow or dead the
    collector and Sentry are, this returns within twice the timeout. Nothing is shut down, so the
    app may go on. Returns False when something was still pending at a deadline.
    """
    rt = runtime()
    timeout = rt.settings.shutdown_timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    pending: list[threading.Event] = []
    for what, provider in (("span flush", trace.get_tracer_provider()), ("metric flush", metrics.get_meter_provider())):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            pending.append(in_background(what, functools.partial(flush, int(timeout * 1000))))
    flushed = all([done.wait(max(0.0, deadline - time.monotonic())) for done in pending])
    if rt.sentry_active:
        with contained("Sentry flush"):
            started = time.monotonic()
            sentry_sdk.flush(timeout=timeout)
            # The SDK does not say whether it got through; it only waits that long when it did not.
            flushed = flushed and time.monotonic() - started < timeout
    if not flushed:
        log_once(
            "flush-incomplete",
            logging.WARNING,
            "otel_gatewayz: telemetry still pending after the %gs shutdown timeout is lost (GATEWAYZ_SHUTDOWN_TIMEOUT)",
            timeout,
        )
    return flushed
