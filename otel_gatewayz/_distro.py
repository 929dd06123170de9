"""Entry points for ``opentelemetry-instrument``: the distro and the configurator."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from ._context.hooks import HTTP_CLIENT_INSTRUMENTATIONS, fastapi_instrument_kwargs
from ._setup.configurator import GatewayzConfigurator
from ._setup.defaults import apply_environment_defaults
from ._setup.runtime import runtime

__all__ = ["GatewayzConfigurator", "GatewayzDistro", "instrumentor_kwargs"]


def instrumentor_kwargs(name: str) -> dict[str, Any] | None:
    """Our arguments for the instrumentor behind entry point ``name`` (every HTTP client gets our hooks).

    The configurator has run by the time instrumentors load, so the runtime's hooks exist.
    """
    if name == "fastapi":
        return fastapi_instrument_kwargs()
    if name in HTTP_CLIENT_INSTRUMENTATIONS:
        return runtime().client_hooks.kwargs_for(name)
    return None


class GatewayzDistro(BaseDistro):  # type: ignore[misc]
    """Sets defaults for unset ``OTEL_*`` variables and passes our hooks to the instrumentors."""

    def _configure(self, **kwargs: Any) -> None:
        apply_environment_defaults(os.environ)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        extra = instrumentor_kwargs(entry_point.name)
        if extra is not None:
            kwargs = {**extra, **kwargs}
        super().load_instrumentor(entry_point, **kwargs)
