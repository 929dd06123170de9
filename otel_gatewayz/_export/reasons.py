"""Why an export failed, read from what the exporter logged while it ran; its own lines held back.

The OTLP exporters say why an export failed only in log lines (one per batch and per retry: a
collector outage floods the logs). While our ``export`` call runs, those lines are captured on
that thread and turned into one reason from a small fixed set, fit for a metric label.
"""

from __future__ import annotations

import contextlib
import http
import logging
import threading
from collections.abc import Iterator, Sequence

from opentelemetry.sdk.trace.export import SpanExporter

# Loggers the OTLP exporters report failures on besides their own module's.
_EXTRA_EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.common.http",)
_NOT_EXPORTERS = frozenset({"builtins", "abc", "typing"})
_MAX_CAPTURED = 8
_MAX_DETAIL = 200
_PHRASES = {status.phrase: status.value for status in http.HTTPStatus}


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


class QueueFullFilter(logging.Filter):
    """Drops the SDK's own "Queue full, dropping Span." warning: we count and log those drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Queue full, dropping %s." and record.args == ("Span",))


CAPTURE = _ExportLogCapture()


def exporter_loggers(exporter: SpanExporter) -> list[logging.Logger]:
    """The loggers of the modules the exporter's classes come from (where exporters log)."""
    modules = {cls.__module__ for cls in type(exporter).__mro__ if cls is not SpanExporter} - _NOT_EXPORTERS
    return [logging.getLogger(name) for name in sorted(modules | set(_EXTRA_EXPORTER_LOGGERS))]


def reason_of(records: Sequence[logging.LogRecord]) -> tuple[str, str]:
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
