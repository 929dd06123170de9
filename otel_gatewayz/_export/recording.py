"""What recording every request costs, kept low: exceptions on spans the head did not sample.

With ``GATEWAYZ_KEEP_TRACES`` every span records, so an error escaping a route makes
OpenTelemetry's ASGI middleware call ``Span.record_exception`` on a server span the head did not
sample, before any handler has decided anything. The SDK formats the stack trace with
``traceback.format_exception``, which on Python 3.11+ also finds each frame's column positions
and parses each source line for the ``^^^`` markers: about 1 ms for a FastAPI stack, most of
an error request's cost. On such a span (sampled flag off) the exception event is built here
with the same attributes and a stack trace of the same frames without those markers; a span
whose trace storm control already dropped (``TRACE_BUDGET_ATTR`` False) records none. Sampled
spans keep the SDK's own method. The SDK's method is wrapped once; a test in
``tests/unit/test_internals.py`` compares both events for the same exception.
"""

from __future__ import annotations

import traceback
from typing import Any

from opentelemetry.sdk.trace import Span
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_ESCAPED,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.util import types

from .._errors.storm import TRACE_BUDGET_ATTR

__all__ = ["plain_stacktrace", "record_exceptions_cheaply"]

_WRAPPED = "__otel_gatewayz_record_exception__"
_MAX_CHAIN = 10
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def plain_stacktrace(exception: BaseException) -> str:
    """``traceback.format_exception``'s text for ``exception`` and its chain, without column markers."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exception
    link = ""
    while current is not None and id(current) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for index, (exc, _) in enumerate(reversed(chain)):
        if index:
            parts.append(chain[len(chain) - index][1])
        if exc.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__)).format())
        parts.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(parts)


def _exception_type(exception: BaseException) -> str:
    module = type(exception).__module__
    qualname = type(exception).__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def record_exceptions_cheaply() -> None:
    """Wrap the SDK's ``Span.record_exception`` (once): the cheap event on spans the head did not sample."""
    original: Any = Span.record_exception
    if getattr(original, _WRAPPED, False):
        return

    def record_exception(
        self: Span,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if self.context.trace_flags.sampled:
            original(self, exception, attributes, timestamp, escaped)
            return
        if (self.attributes or {}).get(TRACE_BUDGET_ATTR) is False:
            return  # dropped when its root ends: nothing to format
        event: dict[str, types.AttributeValue] = {
            EXCEPTION_TYPE: _exception_type(exception),
            EXCEPTION_MESSAGE: str(exception),
            EXCEPTION_STACKTRACE: plain_stacktrace(exception),
            EXCEPTION_ESCAPED: str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event(name="exception", attributes=event, timestamp=timestamp)

    setattr(record_exception, _WRAPPED, True)
    Span.record_exception = record_exception  # type: ignore[method-assign]
