"""The bounded flush for a graceful shutdown: spans and metrics side by side, then Sentry.

uvicorn (>= 0.29) re-raises SIGTERM after its own graceful shutdown with the default handler
back in place, so the process dies of the signal and no ``atexit`` hook runs (sentry-sdk's
flush, the TracerProvider's shutdown); whatever was still queued is lost unless it is flushed
before that, e.g. at the end of the ASGI lifespan.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

import sentry_sdk
from opentelemetry import metrics, trace

from .._safety.background import in_background
from .._safety.log import contained, log_once


def flush_pending(timeout: float, *, sentry_active: bool) -> bool:
    """Flush spans (and the Sentry transactions built from them) and metrics, then Sentry.

    Spans and metrics are flushed side by side within ``timeout`` seconds (the setup passes
    ``GATEWAYZ_SHUTDOWN_TIMEOUT``), then Sentry within as long again: however slow or dead the
    collector and Sentry are, this returns within twice the timeout. Nothing is shut down, so the
    app may go on. Returns False when something was still pending at a deadline.
    """
    deadline = time.monotonic() + timeout
    pending: list[threading.Event] = []
    for what, provider in (("span flush", trace.get_tracer_provider()), ("metric flush", metrics.get_meter_provider())):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            pending.append(in_background(what, functools.partial(flush, int(timeout * 1000))))
    flushed = all([done.wait(max(0.0, deadline - time.monotonic())) for done in pending])
    if sentry_active:
        with contained("Sentry flush"):
            started = time.monotonic()
            sentry_sdk.flush(timeout=timeout)
            # The SDK does not say whether it got through; it only waits that long when it did not.
            flushed = flushed and time.monotonic() - started < timeout
    if not flushed:
        log_once(
            "flush-incomplete",
            logging.WARNING,
            "otel_gatewayz: telemetry still pending after the %gs shutdown timeout is lost (GATEWAYZ_SHUTDOWN_TIMEOUT)",
            timeout,
        )
    return flushed
