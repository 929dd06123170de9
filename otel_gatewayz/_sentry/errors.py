"""The error-event worker: builds and sends Sentry error events off the request path.

The recorder hands it an :class:`ErrorCapture`; one daemon thread builds the event (frames,
source context, bounded locals) and hands it to ``send``: the setup's direct envelopes
(``error_envelopes.py``: scopes, our hooks with the enrichment from the captured request
snapshot, the captured trace's ids and DSC, and scrubbing, then the transport), the one path a
recorded error takes to Sentry. The queue is bounded: when full the error is counted in
``gatewayz_telemetry_dropped_total{signal="sentry",reason="error_queue_full"}``, never waited for.
Once per budget window (and at shutdown) it sends what storm control suppressed: one summary
event per fingerprint, under the id its suppressed errors were answered with, listing their kept
traces, and the counts as a client report.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sentry_sdk
from sentry_sdk.client import BaseClient

from .._errors.capture import ErrorCapture
from .._errors.recorder import MECHANISM
from .._errors.storm import EventBudget, Fingerprint, Summary
from .._metrics.drops import DropCounter
from .._safety.background import OwnThread
from .._safety.log import contained
from .frames import exception_interface

QUEUE_SIZE = 256
# Events wait (on this thread) while the SDK's send queue is this full, so that a burst waits in
# our bounded queue rather than overflowing the SDK's; at most BACKPRESSURE_WAIT seconds each.
BACKPRESSURE = 0.5
BACKPRESSURE_WAIT = 2.0
CAPTURE_HINT = "otel_gatewayz_capture"
SUMMARY_FINGERPRINT = ["otel_gatewayz", "suppressed-errors"]
MAX_SUMMARY_GROUPS = 50

Send = Callable[[dict[str, Any], dict[str, Any]], str | None]


def transport_backlog(client: BaseClient | None = None) -> float:
    """How full the client's send queue is, 0..1 (our transport tells; another one: 0)."""
    backlog = getattr((client or sentry_sdk.get_client()).transport, "backlog", None)
    return float(backlog()) if callable(backlog) else 0.0


def record_lost(count: int, client: BaseClient | None = None) -> None:
    """Errors storm control kept from Sentry, reported to it as a client report."""
    transport = (client or sentry_sdk.get_client()).transport
    if transport is not None:
        transport.record_lost_event("sample_rate", data_category="error", quantity=count)


def build_event(capture: ErrorCapture) -> dict[str, Any]:
    """The Sentry event for ``capture`` (before the client's hooks and scope)."""
    report = capture.report
    event: dict[str, Any] = {
        "event_id": capture.event_id,
        "timestamp": datetime.fromtimestamp(capture.timestamp, timezone.utc),
        "level": report.level,
        "exception": exception_interface(capture, MECHANISM),
        "fingerprint": list(report.fingerprint),
        "tags": dict(report.tags),
    }
    contexts = dict(report.contexts)
    if capture.trace_ids is not None:
        contexts["trace"] = {"trace_id": capture.trace_ids[0], "span_id": capture.trace_ids[1]}
    if contexts:
        event["contexts"] = contexts
    if capture.suppressed:
        event["extra"] = {"gatewayz_suppressed_since_last_event": capture.suppressed}
    return event


def summary_event(fingerprint: Fingerprint, summary: Summary, budget: EventBudget) -> dict[str, Any]:
    """A group's summary: the id its suppressed errors were answered with, how many, and their kept traces."""
    group = " / ".join(fingerprint)
    return {
        "event_id": summary.event_id,
        "level": "warning",
        "message": (
            f"otel_gatewayz: {summary.count} errors of {group} not sent in full by storm control "
            f"(at most {budget.limit} events per fingerprint per {budget.window:g} s); "
            "each was answered with this event's id"
        ),
        "fingerprint": list(SUMMARY_FINGERPRINT),
        "tags": {"gatewayz.suppressed": "true", "gatewayz.suppressed.group": group[:200]},
        "extra": {
            "gatewayz_suppressed": {group: summary.count},
            "gatewayz_suppressed_total": summary.count,
            "gatewayz_kept_trace_ids": list(summary.trace_ids),
        },
    }


class ErrorEventWorker:
    """Bounded queue + one daemon thread (started on first use, again in a forked child)."""

    def __init__(
        self,
        drops: DropCounter,
        budget: EventBudget | None,
        send: Send,
        record_lost: Callable[[int], None] = record_lost,
        queue_size: int = QUEUE_SIZE,
        backlog: Callable[[], float] = transport_backlog,
    ) -> None:
        self._drops = drops
        self.budget = budget
        self._send = send
        self._record_lost = record_lost
        self._queue: deque[ErrorCapture] = deque()
        self._queue_size = queue_size
        self._backlog = backlog
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._worker = OwnThread(self._run, "otel_gatewayz errors")
        self._next_summary = time.monotonic() + (budget.window if budget else 0.0)

    def submit(self, capture: ErrorCapture) -> bool:
        """Queue ``capture`` for building; False (counted) when the queue is full."""
        with self._cond:
            if len(self._queue) >= self._queue_size:
                full = True
            else:
                full = False
                self._queue.append(capture)
                if self._worker.ensure():
                    self._busy = False  # a forked child's copy of the parent's state
                self._cond.notify()
        if full:
            self._drops.count(
                "sentry", "error_queue_full", what="a Sentry error event was dropped", detail="event queue full"
            )
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event went to the client, then send the suppressed summary."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._busy) and self._worker.running():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        self.send_summary()
        return True

    def close(self) -> None:
        """End the worker thread once the queue is empty (an in-process fixture's worker ends with its test)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(BACKPRESSURE_WAIT)

    def send_summary(self) -> None:
        """One summary event per group that had errors suppressed (the busiest first), and a client report."""
        if self.budget is None:
            return
        summaries = self.budget.take_summaries()
        if not summaries:
            return
        ordered = sorted(summaries.items(), key=lambda item: item[1].count, reverse=True)
        unsent = dict(ordered[MAX_SUMMARY_GROUPS:])  # the rest go with the next window's
        with contained("suppressed-errors summary"):
            self._record_lost(sum(summary.count for _, summary in ordered[:MAX_SUMMARY_GROUPS]))
        for fingerprint, summary in ordered[:MAX_SUMMARY_GROUPS]:
            sent = None
            with contained("suppressed-errors summary"):
                sent = self._send(summary_event(fingerprint, summary, self.budget), {})
            if sent is None:
                unsent[fingerprint] = summary
        if unsent:
            self.budget.give_back(unsent)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closed:
                        return
                    wait = self._next_summary - time.monotonic() if self.budget else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                capture = self._queue.popleft() if self._queue else None
                self._busy = capture is not None
            if capture is not None:
                self._wait_for_transport()
                with contained("Sentry error event"):
                    self._send(build_event(capture), {CAPTURE_HINT: capture})
                capture = None
            if self.budget is not None and time.monotonic() >= self._next_summary:
                self._next_summary = time.monotonic() + self.budget.window
                self.send_summary()
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _wait_for_transport(self) -> None:
        deadline = time.monotonic() + BACKPRESSURE_WAIT
        with contained("Sentry send queue"):
            while self._backlog() >= BACKPRESSURE and time.monotonic() < deadline:
                time.sleep(0.01)
