"""Release health for a server: request-mode session aggregates, per release and environment.

As sentry-sdk does for web frameworks, each request is one session, counted in a bucket of the
minute it started: ``errored`` when it answered 5xx, raised out of the app, or had an error
recorded as unhandled (``handled: false``, e.g. one that escaped a stream after the 200), else
``exited``. Only requests the server hook opened a state for count, so the untraced health and
metrics routes never do. Aggregates go out through the SDK's transport every
:data:`FLUSH_INTERVAL` seconds and at shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sentry_sdk.envelope import Envelope, Item, PayloadRef

from .._context.state import current_state
from .._safety.log import contained, log_once

FLUSH_INTERVAL = 60.0
MAX_BUCKETS = 1440  # a day of minutes, should the transport stay down
ASGIApp = Callable[..., Any]


def _format_minute(start: float) -> str:
    return datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_last_minute: tuple[float, str] = (-1.0, "")


def _minute(now: float) -> str:
    """The bucket key of ``now``'s minute; formatted once a minute, not once a request."""
    global _last_minute
    start = now - now % 60
    last = _last_minute  # one read: another thread may swap in a newer pair meanwhile
    if last[0] != start:
        last = _last_minute = (start, _format_minute(start))
    return last[1]


class SessionAggregator:
    """Counts request sessions by start minute and sends them through ``send`` (an envelope sink)."""

    def __init__(self, release: str, environment: str, send: Callable[[Envelope], None]) -> None:
        self._attrs = {"release": release, "environment": environment}
        self._send = send
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[str, int]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def count(self, errored: bool, now: float | None = None) -> None:
        started = _minute(time.time() if now is None else now)
        with self._lock:
            bucket = self._buckets.get(started)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    return
                bucket = self._buckets[started] = {"exited": 0, "errored": 0}
            bucket["errored" if errored else "exited"] += 1
        self._ensure_thread()

    def payload(self) -> dict[str, Any] | None:
        """The pending aggregates (and forget them), or None when there are none."""
        with self._lock:
            buckets, self._buckets = self._buckets, {}
        if not buckets:
            return None
        aggregates = [
            {"started": started, **{k: v for k, v in counts.items() if v}}
            for started, counts in sorted(buckets.items())
        ]
        return {"attrs": dict(self._attrs), "aggregates": aggregates}

    def flush(self) -> None:
        """Send what is pending now (one ``sessions`` item)."""
        with contained("session flush"):
            payload = self.payload()
            if payload is not None:
                self._send(Envelope(items=[Item(payload=PayloadRef(json=payload), type="sessions")]))

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="otel_gatewayz-sessions", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()

    def close(self) -> None:
        """Stop the flush thread (an in-process fixture's aggregator ends with its test); pending counts stay."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(FLUSH_INTERVAL)

    def wrap_stack(self, stack: ASGIApp) -> ASGIApp:
        """Put the session middleware just inside Starlette's ``ServerErrorMiddleware`` (the stack's outer layer).

        The FastAPI instrumentation expects the stack it wraps to be a ``ServerErrorMiddleware``, so
        ours goes inside it: an unhandled error reaches it as an exception, a 5xx as a status.
        """
        with contained("session middleware"):  # the app builds whatever happens here
            inner = getattr(stack, "app", None)
            if inner is None:
                log_once(
                    "session-stack",
                    logging.WARNING,
                    "otel_gatewayz: unexpected middleware stack; sessions are not counted",
                )
                return stack
            stack.app = self.middleware(inner)  # type: ignore[attr-defined]
        return stack

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` wrapped so that every HTTP request the server hook opened counts as one session."""
        aggregator = self

        async def sessions(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            status: list[int] = []

            async def watched_send(message: Any) -> None:
                if message.get("type") == "http.response.start":
                    status.append(int(message.get("status", 0)))
                await send(message)

            raised = True
            try:
                await app(scope, receive, watched_send)
                raised = False
            finally:
                aggregator._end(raised, status)

        return sessions

    def _end(self, raised: bool, status: list[int]) -> None:
        try:
            state = current_state()
            if state is None:  # not a traced route (health, metrics): not a session
                return
            self.count(raised or state.unhandled_error or bool(status and status[0] >= 500))
        except Exception:  # noqa: BLE001 - a session is never worth a request
            log_once("session-count", logging.ERROR, "otel_gatewayz: counting a session failed", exc_info=True)
