"""The SDK configurator, subclassed so the SDK's own path runs (config file, OpAMP, exporters), plus ``configure()``."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from .._config.settings import Settings
from .._context.hooks import fastapi_instrument_kwargs
from .._safety.log import contained
from .defaults import apply_environment_defaults
from .install import build
from .processes import is_multiprocessing_helper
from .runtime import LOCK, runtime


class GatewayzConfigurator(_OTelSDKConfigurator):
    """Builds our pieces once, then hands the SDK's configurator its arguments.

    ``_OTelSDKConfigurator`` is the SDK's documented base for distros (private by name only);
    a test fails if it moves.
    """

    def _configure(self, **kwargs: Any) -> None:
        if is_multiprocessing_helper():
            return  # no providers, no metrics snapshot, no target_info in the resource tracker
        with LOCK:
            if runtime().configured:
                return
            build(super()._configure, kwargs.get("auto_instrumentation_version"), os.environ)


def configure(*, instrument: bool = True) -> Settings:
    """Configure tracing, metrics and Sentry from the environment; idempotent.

    Call it before creating the FastAPI app when not running under ``opentelemetry-instrument``.
    With ``instrument=True`` it also instruments FastAPI and httpx.
    """
    with LOCK:
        if not runtime().configured:
            apply_environment_defaults(os.environ)
            GatewayzConfigurator().configure()  # type: ignore[no-untyped-call]
            if instrument:
                _instrument_libraries()
        return runtime().settings


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation import httpx as httpx_instrumentation
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    fastapi = FastAPIInstrumentor()
    if not fastapi.is_instrumented_by_opentelemetry:
        fastapi.instrument(**fastapi_instrument_kwargs())
    hooks = runtime().client_hooks.httpx_kwargs()
    for name in ("HTTPXClientInstrumentor", "HTTPX2ClientInstrumentor"):  # httpx and, where installed, httpx2
        instrumentor_class = getattr(httpx_instrumentation, name, None)
        if instrumentor_class is None:
            continue
        instrumentor = instrumentor_class()
        if not instrumentor.is_instrumented_by_opentelemetry:
            with contained(f"{name} instrumentation"):
                instrumentor.instrument(**hooks)
