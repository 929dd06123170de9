"""Entry points for ``opentelemetry-instrument``: the distro and the configurator."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from ._context.hooks import fastapi_instrument_kwargs
from ._setup.configurator import GatewayzConfigurator
from ._setup.defaults import apply_environment_defaults
from ._setup.runtime import runtime

__all__ = ["GatewayzConfigurator", "GatewayzDistro"]


def _httpx_kwargs() -> dict[str, Any]:
    return runtime().client_hooks.httpx_kwargs()


# The configurator has run by the time instrumentors load, so the runtime's hooks exist.
_INSTRUMENTOR_KWARGS: dict[str, Callable[[], dict[str, Any]]] = {
    "fastapi": fastapi_instrument_kwargs,
    "httpx": _httpx_kwargs,
}


class GatewayzDistro(BaseDistro):  # type: ignore[misc]
    """Sets defaults for unset ``OTEL_*`` variables and passes our hooks to the instrumentors."""

    def _configure(self, **kwargs: Any) -> None:
        apply_environment_defaults(os.environ)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        extra = _INSTRUMENTOR_KWARGS.get(entry_point.name)
        if extra is not None:
            kwargs = {**extra(), **kwargs}
        super().load_instrumentor(entry_point, **kwargs)
