"""Record an error once: on the span, in the errors counter, and as one Sentry event.

Every capture path (the global exception handler, ``capture_exception``,
``capture_errors``) goes through :meth:`ErrorRecorder.record`, so an exception seen twice on
its way up (a streaming generator, then the global handler) is recorded once. The Sentry
event's mechanism names us (``otel_gatewayz``) and says whether the app handled the error:
``handled: false`` for one that escaped a route or a stream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .._context.state import RequestState, current_state
from .._metrics.instruments import Instruments
from .._safety.log import contained, log_once
from .capture import ErrorCapturer, ErrorReport
from .grouping import UNMATCHED_ROUTE, ErrorGrouper, ErrorGrouping, grouped_exception, route_of

_CAPTURED_ATTR = "__otel_gatewayz_event_id__"
_TRACE_ATTR = "__otel_gatewayz_trace_id__"
MECHANISM = "otel_gatewayz"
_WITHHELD_ATTR = "__otel_gatewayz_withheld__"  # recorded as an expected error, not sent


def already_recorded(exc: BaseException) -> bool:
    """True for an exception the recorder has seen.

    The server logs the exception again after our handler answered ("Exception in ASGI
    application"), possibly in another task than ours; that second report must not become a
    second Sentry event, nor resurrect an error the policy chose not to send.
    """
    return hasattr(exc, _CAPTURED_ATTR)


def _mark_withheld(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _WITHHELD_ATTR, True)


def _mark(exc: BaseException, event_id: str) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _CAPTURED_ATTR, event_id)


def recorded_ids(exc: BaseException) -> tuple[str | None, str | None]:
    """``(trace_id, sentry_event_id)`` the recorder left on ``exc`` (for the log line reporting it)."""
    return getattr(exc, _TRACE_ATTR, None), getattr(exc, _CAPTURED_ATTR, None) or None


class ErrorRecorder:
    """Records errors into the span, the error counters and (when Sentry is on and allows it) Sentry.

    ``capturer`` is the one way to Sentry (capture now, event built off the request path); None
    when Sentry is off.
    """

    def __init__(
        self,
        grouper: ErrorGrouper,
        instruments: Instruments,
        *,
        capturer: ErrorCapturer | None,
        capture_expected_errors: bool,
        failed_status_codes: tuple[tuple[int, int], ...] = ((500, 599),),
        on_error: Callable[[BaseException, ErrorGrouping], None] | None = None,
        on_unanswered: Callable[[RequestState | None, str], None] | None = None,
    ) -> None:
        self.grouper = grouper
        self._on_error = on_error  # e.g. the local console line
        self._on_unanswered = on_unanswered  # the client hooks close the calls the error left unanswered
        self._failed_status_codes = failed_status_codes
        self._instruments = instruments
        self._capture_expected = capture_expected_errors
        self._capturer = capturer

    def record(
        self,
        exc: BaseException,
        *,
        level: str = "error",
        context: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        expected: bool = False,
        record_on_span: bool = True,
        handled: bool = True,
        server_error: bool = False,
    ) -> str | None:
        """Record ``exc`` once; return the Sentry event id (None when not sent to Sentry).

        ``server_error``: the request is answered 5xx because of ``exc``, so it is never expected.
        """
        previous = getattr(exc, _CAPTURED_ATTR, None)
        if previous is not None:
            if server_error and not previous and getattr(exc, _WITHHELD_ATTR, False):
                return self._send_withheld(exc, level, context, tags)
            return previous or None
        cause = grouped_exception(exc)
        if cause is not exc and hasattr(cause, _CAPTURED_ATTR):
            # ``raise HTTPException(503) from exc`` after ``exc`` was recorded (``capture_errors``):
            # one error, counted once; sent now if it was withheld as expected.
            cause_event_id = self.record(cause, level=level, context=context, tags=tags, server_error=server_error)
            _mark(exc, cause_event_id or "")
            return cause_event_id
        state = current_state()
        event_id: str | None = None
        _mark(exc, "")
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, _TRACE_ATTR, trace.format_trace_id(span_context.trace_id))
        if not handled and state is not None:
            state.unhandled_error = True
        with contained("error recording"):
            grouping = self.grouper.group(exc, state)
            if self._on_error is not None:
                with contained("error console line"):
                    self._on_error(exc, grouping)
            with contained("error span annotation"):  # OTel's record_exception calls str(exc)
                _annotate_spans(exc, grouping, state, record_on_span)
            self._count(grouping, state)
            if self._on_unanswered is not None:
                self._on_unanswered(state, grouping.error_type)
            expected = not server_error and (expected or grouping.category == "validation_error")
            capturer = self._capturer
            if capturer is not None and (self._capture_expected or not expected):
                event_id = capturer.capture(exc, _report(grouping, level, context, tags, handled, state))
            elif capturer is not None:
                _mark_withheld(exc)
                if event_id is None and not handled:
                    log_once(
                        "event-not-sent",
                        logging.WARNING,
                        "otel_gatewayz: an unhandled error was not sent to Sentry (filtered or rate limited)",
                    )
        _mark(exc, event_id or "")
        return event_id

    def is_failed_status(self, status: int) -> bool:
        """Whether answering ``status`` makes the exception behind it an error (the failed-status setting)."""
        return any(low <= status <= high for low, high in self._failed_status_codes)

    def _send_withheld(
        self, exc: BaseException, level: str, context: dict[str, Any] | None, tags: dict[str, str] | None
    ) -> str | None:
        """An error first recorded as expected (counted, not sent) now answers 5xx: send it, once."""
        event_id: str | None = None
        with contained("error recording"):
            with contextlib.suppress(AttributeError, TypeError):
                delattr(exc, _WITHHELD_ATTR)
            state = current_state()
            grouping = self.grouper.group(exc, state)
            if self._capturer is not None:
                event_id = self._capturer.capture(exc, _report(grouping, level, context, tags, False, state))
        _mark(exc, event_id or "")
        return event_id

    def _count(self, grouping: ErrorGrouping, state: RequestState | None) -> None:
        self._instruments.errors.add(
            1,
            {
                "error.category": grouping.category,
                "error.type": grouping.error_type,
                "user_impact": grouping.user_impact,
                "http.route": route_of(state) or UNMATCHED_ROUTE,
            },
        )
        if self._instruments.first_time(grouping.fingerprint):
            self._instruments.error_groups.add(
                1, {"error.category": grouping.category, "user_impact": grouping.user_impact}
            )


def _report(
    grouping: ErrorGrouping,
    level: str,
    context: dict[str, Any] | None,
    tags: dict[str, str] | None,
    handled: bool,
    state: RequestState | None,
) -> ErrorReport:
    """The error's one report: its fingerprint, the grouping's tags under the caller's, the caller's context."""
    all_tags = {"error_type": grouping.category, "user_impact": grouping.user_impact, **(tags or {})}
    if grouping.provider_status_code is not None:
        all_tags.setdefault("provider_status_code", str(grouping.provider_status_code))
    contexts = {"error_context": context} if context else {}
    return ErrorReport(tuple(grouping.fingerprint), level, handled, all_tags, contexts, state)


def _annotate_spans(
    exc: BaseException, grouping: ErrorGrouping, state: RequestState | None, record_on_span: bool
) -> None:
    attributes: dict[str, str | int] = {
        "error.type": grouping.error_type,
        "gatewayz.error.category": grouping.category,
        "gatewayz.user_impact": grouping.user_impact,
    }
    if grouping.provider_status_code is not None:
        attributes["gatewayz.provider.status_code"] = grouping.provider_status_code
    span = trace.get_current_span()
    if span.is_recording():
        if record_on_span:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, grouping.error_type))
        span.set_attributes(attributes)
    root = state.root_span if state is not None else None
    if root is not None and root is not span and root.is_recording():
        root.set_status(Status(StatusCode.ERROR, grouping.error_type))
        root.set_attributes(attributes)
