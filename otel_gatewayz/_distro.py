"""Entry points for ``opentelemetry-instrument``: the distro and the configurator."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from ._hooks import fastapi_instrument_kwargs, httpx_instrument_kwargs
from ._setup import apply_environment_defaults, configure_from_auto_instrumentation

_INSTRUMENTOR_KWARGS = {"fastapi": fastapi_instrument_kwargs, "httpx": httpx_instrument_kwargs}


class GatewayzDistro(BaseDistro):  # type: ignore[misc]
    """Sets defaults for unset ``OTEL_*`` variables and passes our hooks to the instrumentors."""

    def _configure(self, **kwargs: Any) -> None:
        apply_environment_defaults(os.environ)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        extra = _INSTRUMENTOR_KWARGS.get(entry_point.name)
        if extra is not None:
            kwargs = {**extra(), **kwargs}
        super().load_instrumentor(entry_point, **kwargs)


class GatewayzConfigurator(_BaseConfigurator):
    """Builds the providers, the Sentry client and the propagator once."""

    def _configure(self, **kwargs: Any) -> None:
        configure_from_auto_instrumentation(kwargs.get("auto_instrumentation_version"))
