"""Importing otel_gatewayz and assembling a runtime change no process global: only installing does.

Run in a fresh interpreter, since this one imported the package long ago: every global the
install step (``_setup/install.py``) or the fixture's install (``_testing/fixture.py``) touches is
read before the import and after an assembly, and must not have moved. Exit and fork hooks are
also counted as they are registered. Third-party modules are imported first (their import-time
hooks are theirs), and one throwaway sentry-sdk client is made first: each ``sentry_sdk.Client``
sets up the SDK's continuous profiler, registering an exit hook once per process; that is
sentry-sdk's constructor, whoever calls it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SNAPSHOT = textwrap.dedent(
    """
    import atexit, json, logging, os, signal, sys, threading

    registered = {"atexit": 0, "fork": 0}
    _register, _at_fork = atexit.register, os.register_at_fork

    def counting_register(*args, **kwargs):
        registered["atexit"] += 1
        return _register(*args, **kwargs)

    def counting_at_fork(**kwargs):
        registered["fork"] += 1
        return _at_fork(**kwargs)

    atexit.register, os.register_at_fork = counting_register, counting_at_fork

    import sentry_sdk
    from opentelemetry import _logs, metrics, propagate, trace
    # What third-party modules do when imported is not ours: the OTel SDK's loggers get their
    # filters, certifi (through requests, the OTLP exporter's client) an exit hook; and every
    # sentry-sdk Client sets up its continuous profiler, with an exit hook the first time.
    import opentelemetry.sdk._logs.export, opentelemetry.sdk.metrics, opentelemetry.sdk.trace.export, requests
    import opentelemetry.exporter.otlp.proto.http.trace_exporter, detect_secrets.plugins
    sentry_sdk.Client().close()
    from opentelemetry.sdk.metrics import MeterProvider
    provider = MeterProvider(shutdown_on_exit=False)  # a test's own, as the fixture makes (its fork hook is the SDK's)
    from opentelemetry.sdk.trace import Span
    from prometheus_client import REGISTRY
    from starlette.applications import Starlette
    from fastapi import FastAPI
    from uvicorn.logging import AccessFormatter

    def listening_ports():
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = []
        for table in ("tcp", "tcp6"):
            with open(f"/proc/net/{table}") as lines:
                for line in list(lines)[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # listening, ours
                        ports.append(int(fields[1].rsplit(":", 1)[1], 16))
        return sorted(ports)

    def loggers():
        every = {"": logging.getLogger()}
        every.update(
            (name, logger) for name, logger in logging.Logger.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        )
        return every

    def snapshot():
        return {
            "tracer provider": repr(trace.get_tracer_provider()),
            "meter provider": repr(metrics.get_meter_provider()),
            "logger provider": repr(_logs.get_logger_provider()),
            "propagator": repr(propagate.get_global_textmap()),
            "sentry client": type(sentry_sdk.get_client()).__name__,
            "sentry active": sentry_sdk.get_client().is_active(),
            "sentry global client": repr(sentry_sdk.get_global_scope().client),
            "starlette build": repr(Starlette.__dict__["build_middleware_stack"]),
            "fastapi build": repr(FastAPI.__dict__.get("build_middleware_stack")),
            "uvicorn access lines": repr(AccessFormatter.formatMessage),
            "span record_exception": repr(Span.record_exception),
            "log record factory": repr(logging.getLogRecordFactory()),
            "root handlers": [repr(h) for h in logging.getLogger().handlers],
            "logger handlers": {name: [repr(h) for h in lg.handlers] for name, lg in loggers().items() if lg.handlers},
            "logger filters": {name: [repr(f) for f in lg.filters] for name, lg in loggers().items() if lg.filters},
            "logger levels": {
                name: [lg.level, lg.propagate] for name, lg in loggers().items() if lg.level or not lg.propagate
            },
            "atexit callbacks": atexit._ncallbacks(),
            "exit hooks registered": registered["atexit"],
            "fork hooks registered": registered["fork"],
            "threads": sorted(t.name for t in threading.enumerate()),
            "environment": dict(os.environ),
            "prometheus collectors": sorted(type(c).__name__ for c in REGISTRY._collector_to_names),
            "listening ports": listening_ports(),
            "signal handlers": {s.name: repr(signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT)},
            "excepthook": repr(sys.excepthook),
        }

    before = snapshot()
    import otel_gatewayz
    from otel_gatewayz._config.settings import load_settings
    from otel_gatewayz._setup import runtime
    from otel_gatewayz._setup.assembly import assemble
    from otel_gatewayz._setup.versions import check_installed
    from otel_gatewayz._testing.recording import RecordingTransport

    ASSEMBLE
    after = snapshot()
    print(json.dumps({
        "changed": {key: [before[key], after[key]] for key in before if before[key] != after[key]},
        "runtime installed": runtime._runtime is not None,
        "checked": sorted(before),
    }))
    """
)

# The fixture's assembly: a meter provider of its own, a recording Sentry transport, the console on.
FIXTURE = """
env = {"SENTRY_DSN": "https://public@sentry.invalid/1", "RELEASE_SHA": "abc", "GATEWAYZ_CONSOLE": "true"}
assembly = assemble(load_settings(env), env=env, meter_provider=provider, sentry_transport=RecordingTransport())
assert assembly.sentry is not None and assembly.runtime.sentry_active
"""

# The process's assembly, as ``install.build`` makes it: the global meter provider (not set yet),
# Sentry on (recording, so nothing is contacted), the Prometheus reader named, traces kept at the
# root's end (the gate and the recording sampler), the console on; then the same with Sentry's
# traces on the OTLP route, whose exporter and batch processor the install step alone may start.
PRODUCTION = """
for via in ("envelope", "otlp"):
    env = {
        "SENTRY_DSN": "https://public@sentry.invalid/1",
        "RELEASE_SHA": "abc",
        "GATEWAYZ_CONSOLE": "true",
        "GATEWAYZ_KEEP_TRACES": "true",
        "GATEWAYZ_SENTRY_TRACES_VIA": via,
        "OTEL_METRICS_EXPORTER": "gatewayz_prometheus",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9464",
    }
    settings = load_settings(env)
    assert settings.metrics_exporters == ("gatewayz_prometheus",) and settings.keep_traces
    assembly = assemble(settings, env=env, sentry_transport=RecordingTransport(), mismatched=check_installed())
    assert assembly.sentry is not None and assembly.runtime.sentry_active and assembly.gate is not None
    assert type(assembly.sampler).__name__ == "RecordingSampler"
    assert (assembly.sentry.otlp is not None) == (via == "otlp")
    assembly.without_sentry()
"""


@pytest.mark.parametrize("assembly", [FIXTURE, PRODUCTION], ids=["fixture", "production"])
def test_importing_the_package_and_assembling_a_runtime_change_no_process_global(assembly):
    script = SNAPSHOT.replace("ASSEMBLE", assembly.strip())
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["changed"] == {}
    assert report["runtime installed"] is False  # the API's runtime is set by installing, never by assembling
    assert len(report["checked"]) == 25
