"""Per-request user and request context, kept with the request's local-root span.

The state object is created when a local-root span starts and is stored in a ContextVar of
the task (or thread) serving the request. It is mutable, so a sync FastAPI dependency running
in a worker thread (which gets a *copy* of the context) still updates the request's state.
Every span started later in the request gets the state's attributes (see ``processor``); the
root span gets them when they are set.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.sdk.trace import Span
from opentelemetry.util.types import AttributeValue

from .._spend.accounting import ProviderCall, SpendTotals

MAX_BREADCRUMBS = 100


class PendingCall(NamedTuple):
    """An outgoing call awaiting its response; the client hooks (``hooks.py``) alone write and close these."""

    method: str
    host: str  # host[:port]
    started: float  # perf_counter
    category: str  # "provider" while the request names one, else "http"
    measured: bool  # False when an official GenAI instrumentation measures the SDK call instead


@dataclass
class RequestState:
    """What the request has told us about itself: who calls, what for, what happened so far."""

    root_span: Span | None = None
    scope: MutableMapping[str, Any] | None = None
    user: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    span_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    breadcrumbs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_BREADCRUMBS))
    # Outgoing calls awaiting a response, by the hooks' key for the call.
    pending_calls: dict[int, PendingCall] = field(default_factory=dict)
    # The GenAI operation spans open in this request, by span id (see ``processor``).
    genai_spans: dict[int, Span] = field(default_factory=dict)
    # Provider calls whose answer's usage is awaited (httpx), and what the request spent so far:
    # in all, and per official GenAI span (an SDK call's attempts).
    provider_calls: dict[int, ProviderCall] = field(default_factory=dict)
    spend: SpendTotals = field(default_factory=SpendTotals)
    genai_spend: dict[int, SpendTotals] = field(default_factory=dict)
    # An error escaped a route or a stream (recorded handled: false): the session is errored.
    unhandled_error: bool = False

    def add_breadcrumb(self, crumb: dict[str, Any]) -> None:
        """A step of the request's story (the public call, each outgoing call): the oldest go past the bound."""
        self.breadcrumbs.append(crumb)

    def genai_span_started(self, span: Span) -> None:
        """A GenAI operation span opened in this request: its provider calls are priced under it."""
        self.genai_spans[span.get_span_context().span_id] = span

    def genai_totals(self, span_id: int) -> SpendTotals:
        """What the GenAI operation span ``span_id`` spent so far, over all of its attempts."""
        return self.genai_spend.setdefault(span_id, SpendTotals())

    def genai_span_ended(self, span_id: int) -> None:
        """The GenAI operation span ``span_id`` ended: its totals were put on it, nothing more comes."""
        self.genai_spans.pop(span_id, None)
        self.genai_spend.pop(span_id, None)

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        """Remember attributes for later spans and put them on the root and current span now."""
        self.span_attributes.update(attributes)
        targets = [self.root_span, trace.get_current_span()]
        seen: set[int] = set()
        for span in targets:
            if span is None or id(span) in seen or not span.is_recording():
                continue
            seen.add(id(span))
            span.set_attributes(attributes)


_state: ContextVar[RequestState | None] = ContextVar("otel_gatewayz_request_state", default=None)


def current_state() -> RequestState | None:
    """The state of the request being served here, if any."""
    return _state.get()


def ensure_state() -> RequestState:
    """The current request's state, creating a detached one outside any request."""
    state = _state.get()
    if state is None:
        state = RequestState()
        _state.set(state)
    return state


@contextmanager
def isolated_state() -> Iterator[None]:
    """No request state inside, and what was there before afterwards (a test's context calls stay in its test).

    Context calls outside a request (``set_user_context`` in a test body) make a detached state
    in the caller's context, which for a synchronous test is the session's thread: this scopes it.
    """
    token = _state.set(None)
    try:
        yield
    finally:
        try:
            _state.reset(token)
        except ValueError:  # ended in another context than it began (an async fixture's teardown)
            _state.set(None)


def new_breadcrumb(message: str, category: str, level: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """A Sentry-shaped breadcrumb."""
    crumb: dict[str, Any] = {"timestamp": time.time(), "message": message, "category": category, "level": level}
    if data:
        crumb["data"] = data
    return crumb


def start_request_state(span: trace.Span, scope: MutableMapping[str, Any] | None = None) -> RequestState:
    """Begin a fresh state for a request whose server span is ``span`` (sampled or not).

    Called from the server request hook, which runs for every request in the task that
    serves it, so nothing leaks between requests however many run at once.
    """
    state = RequestState(root_span=span if isinstance(span, Span) else None, scope=scope)
    _state.set(state)
    return state
