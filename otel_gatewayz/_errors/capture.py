"""What the request path keeps of an error for its Sentry event: cheap copies, built into an event later.

On the request path an error costs its grouping, the counters and this capture: the exception's
type, message and frames (file, function, line: no reference to the exception or its frames,
so nothing they hold outlives the request), a bounded snapshot of the in-app frames' locals
(``values.py``), a snapshot of the request's state, the OTel context (trace and span ids, the
caller's DSC), and an event id made up front so the 500 body can carry it. Source context,
objects' own ``repr``, scrubbing and serialising run on the event worker's thread
(``_sentry/errors.py``).
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, NamedTuple, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from sentry_sdk.utils import get_error_message, get_type_module, get_type_name

from .._context.state import MAX_BREADCRUMBS, RequestState
from .storm import TRACE_BUDGET_ATTR, EventBudget
from .values import snapshot

# Frames walked per exception (sentry-sdk's MAX_STACK_FRAMES is 2000; a gateway's are ~40).
MAX_FRAMES = 250
MAX_CHAIN = 10
_EXTERNAL = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


class InApp:
    """sentry-sdk's in-app rule (not a library, under the project root), cached per file."""

    def __init__(self, project_root: str | None = None) -> None:
        self._root = os.path.abspath(project_root or os.getcwd()) + os.sep
        self._cache: dict[str, bool] = {}

    def __call__(self, filename: str) -> bool:
        known = self._cache.get(filename)
        if known is None:
            path = os.path.abspath(filename) if filename else ""
            known = bool(path) and not any(part in path for part in _EXTERNAL) and path.startswith(self._root)
            if len(self._cache) < 10_000:
                self._cache[filename] = known
        return known


class FrameCapture(NamedTuple):
    """What the event needs of a frame: no reference to it (nor, through it, to every local)."""

    filename: str  # the code's file name, as Python has it
    function: str
    module: str | None
    lineno: int
    in_app: bool
    local_vars: dict[str, Any] | None  # a bounded snapshot (``values.snapshot``), in-app frames only


class ExceptionCapture(NamedTuple):
    type_module: str | None
    type_name: str | None
    value: str
    frames: tuple[FrameCapture, ...]


@dataclass(frozen=True)
class ErrorReport:
    """What the recorder decided about one error, the one object every later step reads its fields from.

    The recorder makes it once (grouping, level, tags, the caller's context, the request); the
    capturer, the capture and the event read it as it is, so no field is threaded through three
    signatures.
    """

    fingerprint: tuple[str, ...]
    level: str = "error"
    handled: bool = True  # False: it escaped a route or a stream (the session is errored)
    tags: Mapping[str, str] = field(default_factory=dict)
    contexts: Mapping[str, Any] = field(default_factory=dict)
    state: RequestState | None = None  # the live request state; the capture keeps a snapshot


@dataclass
class ErrorCapture:
    """One error as the event worker needs it; ``chain`` is innermost cause first, as Sentry orders it."""

    event_id: str
    chain: tuple[ExceptionCapture, ...]
    report: ErrorReport  # its ``state`` a snapshot taken at capture
    otel_context: Context
    trace_ids: tuple[str, str] | None  # (trace_id, span_id) hex of the span current at capture
    suppressed: int = 0  # errors of this fingerprint suppressed since its previous full event
    extra: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)  # when it happened, not when its event was built


class EventSink(Protocol):
    """Where the recorder hands its captures (the event worker)."""

    def submit(self, capture: ErrorCapture) -> bool: ...


def new_event_id() -> str:
    """A random 128-bit hex id, as ``uuid4().hex`` is, without its syscall.

    ``os.urandom`` lets go of the GIL, and the busy event worker then keeps the request waiting
    for it: the id is a name, not a secret (``random`` is reseeded in a forked child).
    """
    return f"{random.getrandbits(128):032x}"


def snapshot_state(state: RequestState | None) -> RequestState | None:
    """A copy of what the event reads from the request's state, as it is now."""
    if state is None:
        return None
    return RequestState(
        root_span=None,
        scope=dict(state.scope) if state.scope is not None else None,
        user=dict(state.user),
        request=dict(state.request),
        breadcrumbs=deque(state.breadcrumbs, maxlen=MAX_BREADCRUMBS),
        unhandled_error=state.unhandled_error,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """sentry-sdk's walk: the exception, then its cause or context, until a repeat."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < MAX_CHAIN:
        chain.append(current)
        seen.add(id(current))
        current = current.__cause__ if current.__suppress_context__ else current.__context__
    return chain


def _frames(tb: TracebackType | None, in_app: InApp, with_locals: bool) -> tuple[FrameCapture, ...]:
    frames: list[FrameCapture] = []
    while tb is not None and len(frames) < MAX_FRAMES:
        frame = tb.tb_frame
        code = frame.f_code
        if "__traceback_hide__" not in code.co_varnames:  # sentry-sdk's (and pytest's) marker
            is_app = in_app(code.co_filename)
            module = frame.f_globals.get("__name__")
            frames.append(
                FrameCapture(
                    code.co_filename,
                    code.co_name or "<unknown>",
                    module if isinstance(module, str) else None,
                    tb.tb_lineno,
                    is_app,
                    snapshot(frame.f_locals) if is_app and with_locals else None,
                )
            )
        tb = tb.tb_next
    return tuple(frames)


def _exception(exc: BaseException, in_app: InApp, with_locals: bool) -> ExceptionCapture:
    return ExceptionCapture(
        get_type_module(type(exc)),
        get_type_name(type(exc)),
        get_error_message(exc),
        _frames(exc.__traceback__, in_app, with_locals),
    )


def capture_error(
    exc: BaseException,
    report: ErrorReport,
    *,
    event_id: str,
    trace_ids: tuple[str, str] | None,
    in_app: InApp,
    with_locals: bool,
    suppressed: int = 0,
) -> ErrorCapture:
    chain = tuple(_exception(e, in_app, with_locals) for e in reversed(_chain(exc)))
    return ErrorCapture(
        event_id,
        chain,
        replace(report, state=snapshot_state(report.state)),
        otel_context.get_current(),
        trace_ids,
        suppressed,
    )


class ErrorCapturer:
    """The request path's part of a Sentry event: budget check, capture, hand-off to the sink."""

    def __init__(self, sink: EventSink, budget: EventBudget | None, in_app: InApp, with_locals: bool) -> None:
        self.sink = sink
        self.budget = budget
        self._in_app = in_app
        self._with_locals = with_locals

    def capture(self, exc: BaseException, report: ErrorReport) -> str:
        """The event id for ``exc`` (made here); its event is built later.

        Past the budget no event is built: the id is that of the group's next summary event, and
        when the group also spent its budget of kept traces the root span says so (the trace
        gate then drops the trace).
        """
        span_context = trace.get_current_span().get_span_context()
        trace_ids = (
            (trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id))
            if span_context.is_valid
            else None
        )
        event_id = new_event_id()
        suppressed = 0
        if self.budget is not None:
            admitted = self.budget.admit(report.fingerprint)
            if admitted is None:
                summary_id, keep_trace = self.budget.suppress(report.fingerprint, trace_ids[0] if trace_ids else None)
                root = report.state.root_span if report.state is not None else None
                if not keep_trace and root is not None and root.is_recording():
                    root.set_attribute(TRACE_BUDGET_ATTR, False)
                return summary_id
            suppressed = admitted
        self.sink.submit(
            capture_error(
                exc,
                report,
                event_id=event_id,
                trace_ids=trace_ids,
                in_app=self._in_app,
                with_locals=self._with_locals,
                suppressed=suppressed,
            )
        )
        return event_id
