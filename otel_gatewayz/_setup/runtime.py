"""The pieces built once per process, for the public API and the instrumentation hooks to reach.

Only those two look the runtime up at call time; processors, exporters and the scrubber are
handed what they use when they are built. Before :func:`otel_gatewayz.configure` runs (or
without it, in unit tests of user code), the API works on an unconfigured runtime built from
the environment, with no exporters behind it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider

from .._config.settings import Settings, load_settings
from .._context.hooks import ClientHooks
from .._errors.capture import ErrorCapturer, InApp
from .._errors.grouping import ErrorGrouper, ErrorGrouping
from .._errors.recorder import ErrorRecorder
from .._export.console import ConsoleOutput
from .._export.flush import flush_pending
from .._metrics.genai import GenAiMetrics
from .._metrics.instruments import Instruments
from .._privacy.content import CONTENT_KEYS
from .._privacy.scrubber import Scrubber
from .._privacy.spans import CleanSpans
from .._spend.accounting import Spend
from .._spend.prices import Pricer, price_overrides

if TYPE_CHECKING:  # the Sentry side is imported only when it can start (``assembly.py``)
    from .._sentry.errors import ErrorEventWorker


@dataclass(frozen=True)
class Parts:
    """What everything else is built from: settings, scrubber, grouping, instruments."""

    settings: Settings
    scrubber: Scrubber
    grouper: ErrorGrouper
    instruments: Instruments
    genai: GenAiMetrics
    spend: Spend
    clean_spans: CleanSpans
    console: ConsoleOutput | None = None

    @classmethod
    def build(cls, settings: Settings, meter_provider: MeterProvider | None = None) -> Parts:
        """The parts for ``settings``; instruments on ``meter_provider``, or on the global one once it is set."""
        content_keys = () if settings.capture_message_content else CONTENT_KEYS
        scrubber = Scrubber((*settings.scrub_keys, *content_keys), settings.scrub_safe_keys)
        instruments = Instruments(metrics.get_meter("otel_gatewayz", meter_provider=meter_provider))
        genai = GenAiMetrics(instruments, scrubber)
        pricer = Pricer(price_overrides(settings.prices_file))
        return cls(
            settings,
            scrubber,
            ErrorGrouper(settings.fingerprint_rules, settings.impact_rules, scrubber.scrub_text),
            instruments,
            genai,
            Spend(instruments, pricer, genai.label, trace.get_tracer("otel_gatewayz")),
            CleanSpans(scrubber),
            ConsoleOutput(scrubber) if settings.console else None,
        )


@dataclass(frozen=True)
class Runtime:
    """The configured process: its parts, the error recorder, the client hooks, and what is on."""

    parts: Parts
    recorder: ErrorRecorder
    client_hooks: ClientHooks
    sentry_active: bool = False
    configured: bool = False
    error_events: ErrorEventWorker | None = None

    @property
    def settings(self) -> Settings:
        return self.parts.settings

    @property
    def scrubber(self) -> Scrubber:
        return self.parts.scrubber

    def flush_errors(self) -> bool:
        """Hand every queued error event to the Sentry client (within ``GATEWAYZ_SHUTDOWN_TIMEOUT``)."""
        return self.error_events is None or self.error_events.flush(self.settings.shutdown_timeout)

    def flush(self) -> bool:
        """The bounded shutdown flush (``GATEWAYZ_SHUTDOWN_TIMEOUT``): error events first, then the rest."""
        self.flush_errors()
        return flush_pending(self.settings.shutdown_timeout, sentry_active=self.sentry_active)


def _console_error(console: ConsoleOutput | None) -> Callable[[BaseException, ErrorGrouping], None] | None:
    if console is None:
        return None
    output = console
    return lambda exc, grouping: output.error(exc, grouping.fingerprint, grouping.user_impact)


def make_runtime(parts: Parts, *, configured: bool, error_events: ErrorEventWorker | None = None) -> Runtime:
    """The runtime on ``parts``; Sentry is on exactly when its error events have a worker to go to."""
    capturer = None
    if error_events is not None:
        capturer = ErrorCapturer(error_events, error_events.budget, InApp(), parts.settings.include_local_variables)
    client_hooks = ClientHooks(parts.genai, parts.spend if parts.settings.spend else None, parts.instruments.drops)
    recorder = ErrorRecorder(
        parts.grouper,
        parts.instruments,
        capturer=capturer,
        capture_expected_errors=parts.settings.capture_expected_errors,
        failed_status_codes=parts.settings.failed_request_status_codes,
        on_error=_console_error(parts.console),
        on_unanswered=client_hooks.fail_pending,
    )
    return Runtime(parts, recorder, client_hooks, error_events is not None, configured, error_events)


_runtime: Runtime | None = None
LOCK = threading.RLock()


def runtime() -> Runtime:
    """The configured runtime, or an unconfigured one built from the environment."""
    global _runtime
    current = _runtime
    if current is not None:
        return current
    with LOCK:
        if _runtime is None:
            _runtime = make_runtime(Parts.build(load_settings(os.environ)), configured=False)
        return _runtime


def make_current(new: Runtime | None) -> Runtime | None:
    """Make ``new`` the runtime the API and the hooks reach; the previous one is returned (to put back)."""
    global _runtime
    with LOCK:
        previous, _runtime = _runtime, new
        return previous
