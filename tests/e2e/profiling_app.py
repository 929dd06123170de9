"""Run by test_profiling.py: configure with a short profile buffer, burn some CPU, flush."""

from __future__ import annotations

import sys
import time

import sentry_sdk
from sentry_sdk.profiler import continuous_profiler

continuous_profiler.PROFILE_BUFFER_SECONDS = 1  # a chunk a second instead of a minute

import otel_gatewayz  # noqa: E402

otel_gatewayz.configure()
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    sum(i * i for i in range(10_000))
sentry_sdk.flush(5)
