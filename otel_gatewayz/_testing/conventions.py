"""The HTTP semantic conventions a test's instrumentation follows: those the distro's defaults choose.

Under ``opentelemetry-instrument`` the distro sets ``OTEL_SEMCONV_STABILITY_OPT_IN=http`` before
any instrumentation reads it, and the instrumentations read it once per process, from
``os.environ``. A test process started by pytest never had it set, so for the length of one test
the mode the instrumentations' own parser would give the fixture's environment is put in their
table (``opentelemetry.instrumentation._semconv``, private: a test fails if it moves), and the
previous table put back after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)

__all__ = ["http_conventions"]


@contextmanager
def http_conventions(opt_in: str) -> Iterator[None]:
    """HTTP spans and metrics under ``OTEL_SEMCONV_STABILITY_OPT_IN=opt_in`` until the block ends."""
    stability = _OpenTelemetrySemanticConventionStability
    stability._initialize()  # type: ignore[no-untyped-call]
    table = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    previous = dict(table)
    chosen = [part.strip() for part in opt_in.split(",")]
    table[_OpenTelemetryStabilitySignalType.HTTP] = stability._filter_mode(  # type: ignore[no-untyped-call]
        chosen, _StabilityMode.HTTP, _StabilityMode.HTTP_DUP
    )
    try:
        yield
    finally:
        table.clear()
        table.update(previous)
