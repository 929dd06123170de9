"""Record an error once: on the span, in the errors counter, and as one Sentry event.

Every capture path (the global exception handler, ``capture_exception``,
``capture_errors``) goes through :func:`record_error`, so an exception seen twice on its
way up (a streaming generator, then the global handler) is recorded once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar
from typing import Any

import sentry_sdk
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ._context import RequestState, current_state, new_breadcrumb
from ._genai import record_call
from ._grouping import ErrorGrouping, fingerprint_for, group_error, impact_for
from ._log import contained, log_once
from ._runtime import runtime

_CAPTURED_ATTR = "__otel_gatewayz_event_id__"
# True while record_error itself hands an exception to Sentry.
_capturing: ContextVar[bool] = ContextVar("otel_gatewayz_capturing", default=False)
UNMATCHED_ROUTE = "unmatched"


def route_of(state: RequestState | None) -> str | None:
    """The route template of the request being served, never a raw path."""
    if state is None:
        return None
    route = state.scope.get("route") if state.scope is not None else None
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if state.root_span is not None:
        attr = state.root_span.attributes.get("http.route") if state.root_span.attributes else None
        if isinstance(attr, str):
            return attr
    return UNMATCHED_ROUTE if state.scope is not None else None


def grouping_of(exc: BaseException, state: RequestState | None) -> ErrorGrouping:
    """Grouping by the configured rules; a rule that raises falls back to the spec's defaults."""
    settings = runtime().settings
    route = route_of(state)
    try:
        return group_error(exc, route, settings.fingerprint_rules, settings.impact_rules)
    except Exception:  # noqa: BLE001 - a user rule must never lose the event
        log_once(
            "grouping-rule",
            logging.ERROR,
            "otel_gatewayz: a grouping rule failed; using the spec's rules",
            exc_info=True,
        )
        fingerprint, category = fingerprint_for(exc)
        return ErrorGrouping(fingerprint, category, type(exc).__name__, impact_for(route))


def flush_pending_calls(state: RequestState | None, error_type: str) -> None:
    """Outgoing calls that never got a response: a breadcrumb each, and a failed provider call."""
    if state is None or not state.pending_calls:
        return
    now = time.perf_counter()
    for key, (method, host, started, category) in list(state.pending_calls.items()):
        state.pending_calls.pop(key, None)
        if category == "provider":
            record_call(state, now - started, error_type)
        state.breadcrumbs.append(
            new_breadcrumb(
                f"{method} {host} failed",
                category,
                "error",
                {"method": method, "host": host, "duration_ms": round((now - started) * 1000, 1)},
            )
        )


def record_error(
    exc: BaseException,
    *,
    level: str = "error",
    context: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    expected: bool = False,
    record_on_span: bool = True,
    handled: bool = True,
) -> str | None:
    """Record ``exc`` once; return the Sentry event id (None when not sent to Sentry)."""
    previous = getattr(exc, _CAPTURED_ATTR, None)
    if previous is not None:
        return previous or None
    rt = runtime()
    state = current_state()
    event_id: str | None = None
    _mark(exc, "")
    with contained("error recording"):
        grouping = grouping_of(exc, state)
        with contained("error span annotation"):  # OTel's record_exception calls str(exc)
            _annotate_spans(exc, grouping, state, record_on_span)
        labels = {
            "error.category": grouping.category,
            "error.type": grouping.error_type,
            "user_impact": grouping.user_impact,
            "http.route": route_of(state) or UNMATCHED_ROUTE,
        }
        rt.instruments.errors.add(1, labels)
        if rt.instruments.first_time(grouping.fingerprint):
            rt.instruments.error_groups.add(
                1, {"error.category": grouping.category, "user_impact": grouping.user_impact}
            )
        flush_pending_calls(state, grouping.error_type)
        expected = expected or grouping.category == "validation_error"
        if rt.sentry_active and (rt.settings.capture_expected_errors or not expected):
            all_tags = {"error_type": grouping.category, "user_impact": grouping.user_impact, **(tags or {})}
            contexts = {"error_context": context} if context else {}
            token = _capturing.set(True)
            try:
                event_id = sentry_sdk.capture_exception(
                    exc,
                    fingerprint=list(grouping.fingerprint),
                    tags=all_tags,
                    contexts=contexts,
                    level=level,
                )
            finally:
                _capturing.reset(token)
            if event_id is None and not handled:
                log_once(
                    "event-not-sent",
                    logging.WARNING,
                    "otel_gatewayz: an unhandled error was not sent to Sentry (filtered or rate limited)",
                )
    _mark(exc, event_id or "")
    return event_id


def _mark(exc: BaseException, event_id: str) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _CAPTURED_ATTR, event_id)


def already_recorded(exc: BaseException) -> bool:
    """True for an exception record_error has seen, unless it is record_error sending it now.

    The server logs the exception again after our handler answered ("Exception in ASGI
    application"), possibly in another task than ours; that second report must not become a
    second Sentry event, nor resurrect an error the policy chose not to send.
    """
    return hasattr(exc, _CAPTURED_ATTR) and not _capturing.get()


def _annotate_spans(
    exc: BaseException, grouping: ErrorGrouping, state: RequestState | None, record_on_span: bool
) -> None:
    attributes = {
        "error.type": grouping.error_type,
        "gatewayz.error.category": grouping.category,
        "gatewayz.user_impact": grouping.user_impact,
    }
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
