"""The spec's ``SentryService`` surface, rebuilt on the OpenTelemetry context.

Context set here lives with the request: it reaches the request's spans (server span and
every span started afterwards) and every Sentry event the request produces. Nothing here
raises into the caller's request path: bad input is coerced and logged once.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import reprlib
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any, TypeVar, cast

import sentry_sdk
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from sentry_sdk.utils import safe_repr

from ._context.state import ensure_state, new_breadcrumb
from ._safety.log import contained, log_once
from ._setup.runtime import runtime

F = TypeVar("F", bound=Callable[..., Any])
LEVELS = ("debug", "info", "warning", "error", "fatal")
BREADCRUMB_CATEGORIES = ("auth", "db", "inference", "provider", "cache", "rate_limit")
MAX_ARG_CHARS = 1024
MAX_ARGS = 20
_repr = reprlib.Repr()
_repr.maxstring = MAX_ARG_CHARS
_repr.maxother = MAX_ARG_CHARS
_repr.maxlevel = 3


def _level(level: str) -> str:
    value = str(level).lower()
    if value == "warn":
        value = "warning"
    if value not in LEVELS:
        log_once(
            f"level:{value}",
            logging.WARNING,
            "otel_gatewayz: level %r is not one of %s; using 'info'",
            level,
            ", ".join(LEVELS),
        )
        return "info"
    return value


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-safe data, taken when it is given: state outlives the caller's objects,
    and Sentry serialises events before our enrichment adds the request's state to them."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth < 8 and isinstance(value, Mapping):
        return {_text(key): _plain(item, depth + 1) for key, item in value.items()}
    if depth < 8 and isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item, depth + 1) for item in value]
    return _repr.repr(value)


def _text(value: Any) -> str:
    """``str(value)``, or its safe repr when ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return safe_repr(value)


def _attribute(value: Any) -> AttributeValue | None:
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    return json.dumps(value, default=str)[:MAX_ARG_CHARS]


def set_user_context(
    user_id: str,
    email: str | None = None,
    api_key_id: str | None = None,
    credits: float | None = None,
    plan: str | None = None,
    **extra: Any,
) -> None:
    """Who is calling: on the request's spans (``user.id``, ``gatewayz.user.*``) and Sentry's user."""
    with contained("set_user_context"):
        user = {
            "id": _text(user_id),
            "email": email,
            "api_key_id": api_key_id,
            "credits": credits,
            "plan": plan,
            **extra,
        }
        user = {key: _plain(value) for key, value in user.items() if value is not None}
        state = ensure_state()
        state.user = user
        attributes: dict[str, AttributeValue] = {"user.id": user["id"]}
        if email is not None and runtime().settings.span_pii:
            attributes["user.email"] = email
        for key in ("api_key_id", "credits", "plan", *extra):
            value = _attribute(user.get(key))
            if value is not None:
                attributes[f"gatewayz.user.{key}"] = value
        state.set_attributes(attributes)


def set_request_context(
    endpoint: str,
    method: str,
    model: str | None = None,
    provider: str | None = None,
    stream: bool | None = None,
    **extra: Any,
) -> None:
    """What the request is for: on its spans (``gen_ai.*``, ``gatewayz.*``) and Sentry's request context."""
    with contained("set_request_context"):
        request = {
            "endpoint": endpoint,
            "method": method,
            "model": model,
            "provider": provider,
            "stream": stream,
            **extra,
        }
        request = {key: _plain(value) for key, value in request.items() if value is not None}
        state = ensure_state()
        state.request = request
        attributes: dict[str, AttributeValue] = {
            "gatewayz.request.endpoint": str(endpoint),
            "gatewayz.request.method": str(method),
        }
        if model is not None:
            attributes["gen_ai.request.model"] = str(model)
        if provider is not None:
            attributes["gen_ai.provider.name"] = str(provider)
        if stream is not None:
            attributes["gatewayz.stream"] = bool(stream)
        for key, value in extra.items():
            converted = _attribute(value)
            if converted is not None:
                attributes[f"gatewayz.request.{key}"] = converted
        state.set_attributes(attributes)


def add_breadcrumb(message: str, category: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
    """A step of the request's story: a span event now, a Sentry breadcrumb if an error follows."""
    with contained("add_breadcrumb"):
        crumb = new_breadcrumb(_text(message), _text(category), _level(level), _plain(dict(data)) if data else None)
        state = ensure_state()
        state.add_breadcrumb(crumb)
        span = trace.get_current_span()
        if span.is_recording():
            attributes: dict[str, AttributeValue] = {
                "gatewayz.breadcrumb.category": crumb["category"],
                "gatewayz.breadcrumb.level": crumb["level"],
            }
            for key, value in (crumb.get("data") or {}).items():
                converted = _attribute(value)
                if converted is not None:
                    attributes[f"gatewayz.breadcrumb.data.{key}"] = converted
            span.add_event(crumb["message"], attributes)


def capture_exception(
    error: BaseException,
    context: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    level: str = "error",
) -> str | None:
    """Record a handled error once (span, metric, Sentry); returns the Sentry event id."""
    return runtime().recorder.record(
        error, level=_level(level), context=context, tags={str(k): str(v) for k, v in (tags or {}).items()}
    )


def capture_message(message: str, level: str = "info") -> str | None:
    """Send a message event to Sentry (the spec's "Test error" check); returns its event id."""
    with contained("capture_message"):
        if runtime().sentry_active:
            return sentry_sdk.capture_message(str(message), level=_level(level))  # type: ignore[arg-type]
    return None


def _arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        items = list(bound.arguments.items())
    except (TypeError, ValueError):
        items = [(f"arg{i}", value) for i, value in enumerate(args)] + list(kwargs.items())
    recorded = {
        name: value if isinstance(value, (bool, int, float)) or value is None else _repr.repr(value)
        for name, value in items[:MAX_ARGS]
    }
    scrubbed: dict[str, Any] = runtime().scrubber.scrub(recorded)
    return scrubbed


def capture_errors(operation: str, capture_args: bool = False) -> Callable[[F], F]:
    """Capture (once) and re-raise errors of a sync/async function or generator, tagged ``operation``.

    With ``capture_args=True`` the call's arguments are recorded, scrubbed and bounded in size.
    """

    def decorate(func: F) -> F:
        def report(exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            context: dict[str, Any] = {"operation": operation, "function": getattr(func, "__qualname__", str(func))}
            if capture_args:
                with contained("capture_errors arguments"):
                    context["arguments"] = _arguments(func, args, kwargs)
            runtime().recorder.record(exc, context=context, tags={"operation": operation})

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                try:
                    async for item in func(*args, **kwargs):
                        yield item
                except Exception as exc:
                    report(exc, args, kwargs)
                    raise

            return cast(F, agen_wrapper)

        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                try:
                    return (yield from func(*args, **kwargs))
                except Exception as exc:
                    report(exc, args, kwargs)
                    raise

            return cast(F, gen_wrapper)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                except Exception as exc:
                    report(exc, args, kwargs)
                    raise

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                report(exc, args, kwargs)
                raise

        return cast(F, wrapper)

    return decorate


class SentryService:
    """The spec's facade: the same static methods, backed by the functions above."""

    set_user_context = staticmethod(set_user_context)
    set_request_context = staticmethod(set_request_context)
    add_breadcrumb = staticmethod(add_breadcrumb)
    capture_exception = staticmethod(capture_exception)
    capture_message = staticmethod(capture_message)
