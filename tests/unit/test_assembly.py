"""Importing otel_gatewayz and assembling a runtime change no process global: only installing does.

Run in a fresh interpreter, since this one imported the package long ago: every global the
install step (``_setup/build.py``) or the fixture's install (``_testing/fixture.py``) touches is
read before the import and after an assembly, and must not have moved. Third-party modules are
imported first (their import-time hooks are theirs), and one throwaway sentry-sdk client is made
first: each ``sentry_sdk.Client`` sets up the SDK's continuous profiler, registering an exit hook
once per process; that is sentry-sdk's constructor, whoever calls it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import atexit, json, logging, os, signal, sys, threading

    import sentry_sdk
    from opentelemetry import _logs, metrics, propagate, trace
    # What third-party modules do when imported is not ours: the OTel SDK's loggers get their
    # filters, certifi (through requests, the OTLP exporter's client) an exit hook; and every
    # sentry-sdk Client sets up its continuous profiler, with an exit hook the first time.
    import opentelemetry.sdk._logs.export, opentelemetry.sdk.metrics, opentelemetry.sdk.trace.export, requests
    sentry_sdk.Client().close()
    from prometheus_client import REGISTRY
    from starlette.applications import Starlette
    from fastapi import FastAPI
    from uvicorn.logging import AccessFormatter

    def snapshot():
        return {
            "tracer provider": repr(trace.get_tracer_provider()),
            "meter provider": repr(metrics.get_meter_provider()),
            "logger provider": repr(_logs.get_logger_provider()),
            "propagator": repr(propagate.get_global_textmap()),
            "sentry client": type(sentry_sdk.get_client()).__name__,
            "sentry active": sentry_sdk.get_client().is_active(),
            "starlette build": repr(Starlette.__dict__["build_middleware_stack"]),
            "fastapi build": repr(FastAPI.__dict__.get("build_middleware_stack")),
            "uvicorn access lines": repr(AccessFormatter.formatMessage),
            "log record factory": repr(logging.getLogRecordFactory()),
            "root handlers": [repr(h) for h in logging.getLogger().handlers],
            "logger filters": {
                name: [repr(f) for f in logger.filters]
                for name, logger in logging.Logger.manager.loggerDict.items()
                if isinstance(logger, logging.Logger) and logger.filters
            },
            "atexit callbacks": atexit._ncallbacks(),
            "threads": sorted(t.name for t in threading.enumerate()),
            "environment": dict(os.environ),
            "prometheus collectors": sorted(type(c).__name__ for c in REGISTRY._collector_to_names),
            "signal handlers": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)},
            "excepthook": repr(sys.excepthook),
        }

    before = snapshot()
    import otel_gatewayz
    from opentelemetry.sdk.metrics import MeterProvider
    from otel_gatewayz._config.settings import load_settings
    from otel_gatewayz._setup import runtime
    from otel_gatewayz._setup.assembly import assemble
    from otel_gatewayz._testing.recording import RecordingTransport

    env = {"SENTRY_DSN": "https://public@sentry.invalid/1", "RELEASE_SHA": "abc", "GATEWAYZ_CONSOLE": "true"}
    provider = MeterProvider(shutdown_on_exit=False)
    assembly = assemble(load_settings(env), meter_provider=provider, sentry_transport=RecordingTransport())
    assert assembly.sentry is not None and assembly.runtime.sentry_active
    after = snapshot()
    print(json.dumps({
        "changed": {key: [before[key], after[key]] for key in before if before[key] != after[key]},
        "runtime installed": runtime._runtime is not None,
        "checked": sorted(before),
    }))
    """
)


def test_importing_the_package_and_assembling_a_runtime_change_no_process_global():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["changed"] == {}
    assert report["runtime installed"] is False  # the API's runtime is set by installing, never by assembling
    assert len(report["checked"]) == 18
