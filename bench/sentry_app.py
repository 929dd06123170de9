"""The example gateway under sentry-sdk's own FastAPI integration (the peer users would pick).

Run with plain uvicorn from the repo root, in the sentry peer venv (no OpenTelemetry
instrumentation)::

    BENCH_SENTRY_DSN=http://public@127.0.0.1:PORT/1 BENCH_SENTRY_RATE=1.0 \\
        uvicorn bench.sentry_app:app

``sentry_sdk.init`` runs before the app is imported, with the default (auto-enabled)
integrations: FastAPI, Starlette, httpx (and logging on 2.x; 3.x no longer enables it by
default). It runs on both majors, collecting the same data: 2.x with ``send_default_pii=False``;
3.x, which replaced that option with ``data_collection`` (whose defaults collect more), with the
categories 2.x kept back without PII turned off: user info, cookies, gen_ai inputs and outputs.
Sampled traces go as 2.x and 3.x send them: a transaction envelope per request on 2.x, span v2
items (one envelope per trace, ``trace_lifecycle="stream"``, the only mode) on 3.x. The app's context calls
(``set_user_context``, ``set_request_context``, ``add_breadcrumb``, ``capture_errors``) are
served by a small stand-in for ``otel_gatewayz`` built on sentry-sdk's own scope API, the way
the error-logging spec's ``SentryService`` does it, so this peer carries the same user,
request context and breadcrumbs on its events as ours does.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import types
from typing import Any

import sentry_sdk

SENTRY_MAJOR = int(sentry_sdk.VERSION.split(".", 1)[0])
# What 2.x sends with send_default_pii=False, said the way 3.x takes it (an unknown option is a TypeError there).
_PRIVACY: dict[str, Any] = (
    {"send_default_pii": False}
    if SENTRY_MAJOR < 3
    else {
        "data_collection": {
            "user_info": False,
            "cookies": {"mode": "off"},
            "gen_ai": {"inputs": False, "outputs": False},
        }
    }
)

sentry_sdk.init(
    dsn=os.environ["BENCH_SENTRY_DSN"],
    traces_sample_rate=float(os.environ.get("BENCH_SENTRY_RATE", "1.0")),
    environment=os.environ.get("APP_ENV", "production"),
    release="gatewayz-api@bench",
    **_PRIVACY,
)


def set_user_context(
    user_id: str,
    email: str | None = None,
    api_key_id: str | None = None,
    credits: float | None = None,
    plan: str | None = None,
    **extra: Any,
) -> None:
    user = {"id": user_id, "email": email, "api_key_id": api_key_id, "credits": credits, "plan": plan, **extra}
    sentry_sdk.set_user({k: v for k, v in user.items() if v is not None})


def set_request_context(
    endpoint: str,
    method: str,
    model: str | None = None,
    provider: str | None = None,
    stream: bool | None = None,
    **extra: Any,
) -> None:
    request = {"endpoint": endpoint, "method": method, "model": model, "provider": provider, "stream": stream, **extra}
    sentry_sdk.set_context("request", {k: v for k, v in request.items() if v is not None})
    if model is not None:
        sentry_sdk.set_tag("model", model)
    if provider is not None:
        sentry_sdk.set_tag("provider", provider)


def add_breadcrumb(message: str, category: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
    sentry_sdk.add_breadcrumb(message=message, category=category, level=level, data=data or {})


def capture_errors(operation: str, capture_args: bool = False) -> Any:
    def decorate(func: Any) -> Any:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except Exception as exc:
                    sentry_sdk.capture_exception(exc)
                    raise

            return wrapper
        return func

    return decorate


_shim = types.ModuleType("otel_gatewayz")
_shim.set_user_context = set_user_context  # type: ignore[attr-defined]
_shim.set_request_context = set_request_context  # type: ignore[attr-defined]
_shim.add_breadcrumb = add_breadcrumb  # type: ignore[attr-defined]
_shim.capture_errors = capture_errors  # type: ignore[attr-defined]
sys.modules["otel_gatewayz"] = _shim

from examples.gateway.app import app  # noqa: E402

__all__ = ["app"]
