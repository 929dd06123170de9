"""Log lines that lead to the trace and the Sentry event: ids on access lines and on unhandled-error lines.

Operators read uvicorn's lines first. Each access line gets ``trace_id=``; the line logging an
unhandled error ("Exception in ASGI application") gets ``trace_id=`` and ``sentry_event_id=``,
left on the exception by the recorder, since that line is written after the request's span ended.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from opentelemetry import trace

from .._safety.log import contained
from .recorder import recorded_ids

TRACE_ID_FIELD = "otel_gatewayz_trace_id"
_UNHANDLED_LINE = "Exception in ASGI application"
_PATCHED = "_otel_gatewayz_correlated"
_installed = False


def _correlate(record: logging.LogRecord) -> None:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        setattr(record, TRACE_ID_FIELD, trace.format_trace_id(span_context.trace_id))
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None or not isinstance(record.msg, str) or not record.msg.startswith(_UNHANDLED_LINE):
        return
    trace_id, event_id = recorded_ids(exc)
    ids = " ".join(
        f"{name}={value}" for name, value in (("trace_id", trace_id), ("sentry_event_id", event_id)) if value
    )
    if ids:
        record.msg = f"{record.msg.rstrip()} ({ids})\n"


def _access_line_with_trace(original: Any) -> Any:
    @functools.wraps(original)
    def format_message(self: logging.Formatter, record: logging.LogRecord) -> str:
        line: str = original(self, record)
        trace_id = getattr(record, TRACE_ID_FIELD, None)
        return f"{line} trace_id={trace_id}" if trace_id else line

    setattr(format_message, _PATCHED, True)
    return format_message


def install_log_correlation() -> None:
    """Tag records with the trace id at creation; uvicorn's access formatter prints it (idempotent).

    uvicorn's ``AccessFormatter`` renders a fixed format from the record's arguments, so its
    ``formatMessage`` is wrapped (guarded by a test that fails if uvicorn renames it).
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        with contained("log correlation"):
            _correlate(record)
        return record

    logging.setLogRecordFactory(factory)
    try:
        from uvicorn.logging import AccessFormatter
    except ImportError:
        pass
    else:
        if not getattr(AccessFormatter.formatMessage, _PATCHED, False):
            AccessFormatter.formatMessage = _access_line_with_trace(AccessFormatter.formatMessage)  # type: ignore[method-assign]
    _installed = True
