"""The process-wide state the public API reads: settings, scrubber, instruments.

Before :func:`otel_gatewayz.configure` runs (or without it, in unit tests of user code), the
API still works on settings read from the environment, with no exporters behind it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from opentelemetry import metrics

from ._metrics import Instruments
from ._scrub import Scrubber
from ._settings import Settings, load_settings


@dataclass
class Runtime:
    settings: Settings
    scrubber: Scrubber
    instruments: Instruments
    sentry_active: bool = False
    configured: bool = False


_runtime: Runtime | None = None
_lock = threading.RLock()


def make_runtime(settings: Settings, *, configured: bool, sentry_active: bool = False) -> Runtime:
    scrubber = Scrubber(settings.scrub_keys, settings.scrub_safe_keys)
    instruments = Instruments(metrics.get_meter("otel_gatewayz"))
    return Runtime(settings, scrubber, instruments, sentry_active, configured)


def runtime() -> Runtime:
    """The configured runtime, or an unconfigured one built from the environment."""
    global _runtime
    current = _runtime
    if current is not None:
        return current
    with _lock:
        if _runtime is None:
            _runtime = make_runtime(load_settings(os.environ), configured=False)
        return _runtime


def install(new: Runtime) -> None:
    global _runtime
    with _lock:
        _runtime = new
