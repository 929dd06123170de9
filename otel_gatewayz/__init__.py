"""otel_gatewayz: an OpenTelemetry distribution for FastAPI gateways that call LLM providers.

Run your app with ``opentelemetry-instrument uvicorn app:app`` and call the context
functions below from your auth dependency and routes; everything else is automatic.
"""

from __future__ import annotations

from ._api import (
    SentryService,
    add_breadcrumb,
    capture_errors,
    capture_exception,
    capture_message,
    set_request_context,
    set_user_context,
)
from ._config.settings import Settings
from ._setup.configurator import configure

__all__ = [
    "SentryService",
    "Settings",
    "add_breadcrumb",
    "capture_errors",
    "capture_exception",
    "capture_message",
    "configure",
    "set_request_context",
    "set_user_context",
]
