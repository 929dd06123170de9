"""Entry points for ``opentelemetry-instrument``: the distro and the configurator."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from ._context.hooks import HTTP_CLIENT_INSTRUMENTATIONS, fastapi_instrument_kwargs
from ._safety.log import contained
from ._setup.configurator import GatewayzConfigurator
from ._setup.defaults import apply_environment_defaults
from ._setup.processes import is_multiprocessing_helper
from ._setup.runtime import runtime

__all__ = ["GatewayzConfigurator", "GatewayzDistro", "instrumentor_kwargs"]


# The official GenAI instrumentations (one span and the gen_ai metrics per SDK call).
GENAI_SDKS = ("openai", "anthropic")
_OFFICIAL_GENAI = ("opentelemetry.instrumentation.genai.", "opentelemetry.instrumentation.openai_v2")


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
        if is_multiprocessing_helper():
            return  # the resource tracker serves nothing
        extra = instrumentor_kwargs(entry_point.name)
        if extra is not None:
            kwargs = {**extra, **kwargs}
        super().load_instrumentor(entry_point, **kwargs)
        if entry_point.name in GENAI_SDKS and str(getattr(entry_point, "value", "")).startswith(_OFFICIAL_GENAI):
            with contained("GenAI instrumentation check"):
                if entry_point.load()().is_instrumented_by_opentelemetry:
                    runtime().client_hooks.measured_by_genai_instrumentation(entry_point.name)
