"""Scrub log records: at creation (so every handler, stdout included, sees clean text) and
again as OpenTelemetry log records (exception attributes come from the live exception)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from .scrubber import Scrubber

_installed = False


def _scrub_record(record: logging.LogRecord, scrubber: Scrubber) -> None:
    message = record.getMessage()
    clean = scrubber.scrub_text(message)
    if clean == message:
        return
    # Keep arguments where scrubbing them is enough: formatters such as uvicorn's access log
    # unpack them. Otherwise the secret spans template and argument: keep the clean text.
    if isinstance(record.args, tuple):
        record.args = tuple(scrubber.scrub_text(a) if isinstance(a, str) else a for a in record.args)
        with contextlib.suppress(Exception):
            if record.getMessage() == clean:
                return
    record.msg, record.args = clean, None


class _ScrubbedTracebackRecord(logging.LogRecord):
    """A record whose traceback text is scrubbed when a formatter renders it.

    Lazily: most error records are dropped by level or already reported; formatting and
    scrubbing a long traceback up front would cost every error a few milliseconds.
    """

    scrubber: Scrubber  # set on the class by install_log_record_factory

    @property
    def exc_text(self) -> str | None:
        value: str | None = self.__dict__.get("_ogz_exc_text")
        return value

    @exc_text.setter
    def exc_text(self, value: str | None) -> None:
        self.__dict__["_ogz_exc_text"] = self.scrubber.scrub_text(value) if value else value


def install_log_record_factory(scrubber: Scrubber) -> None:
    """Wrap the current LogRecord factory so messages and tracebacks are scrubbed (idempotent)."""
    global _installed
    _ScrubbedTracebackRecord.scrubber = scrubber
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            _scrub_record(record, _ScrubbedTracebackRecord.scrubber)
            if record.exc_info and type(record) is logging.LogRecord:
                record.__class__ = _ScrubbedTracebackRecord
        except Exception:  # noqa: BLE001 - a log line must never fail because of us
            pass
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class ScrubbingLogProcessor(LogRecordProcessor):
    """Runs before the export processors: scrubs the body and attributes in place."""

    def __init__(self, scrubber: Scrubber) -> None:
        self._scrubber = scrubber

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        scrubber = self._scrubber
        record = log_record.log_record
        if record.body is not None:
            record.body = scrubber.scrub(record.body)
        if record.attributes:
            record.attributes = scrubber.scrub(dict(record.attributes))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
