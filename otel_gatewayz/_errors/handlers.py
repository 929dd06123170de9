"""The global exception handler, installed into every Starlette/FastAPI app without code changes.

An unhandled exception is recorded once (span, metric, Sentry event) and answered with a 500
JSON body carrying the Sentry event id; a handler the app registered for ``Exception`` or 500
still produces the response. 404s and request-validation errors are counted, and sent to
Sentry only where the settings say so. Other ``HTTPException`` 4xx are not errors of ours.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .recorder import ErrorRecorder

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
_PATCHED = "_otel_gatewayz_patched"
_HANDLERS_SET = "_otel_gatewayz_handlers"


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        return await result
    return result


def _unhandled(recorder: ErrorRecorder, user_handler: Handler | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        # The FastAPI instrumentation already put the exception event on the server span.
        event_id = recorder.record(exc, handled=False, record_on_span=False)
        if user_handler is not None:
            return await _call(user_handler, request, exc)
        return JSONResponse(
            {"error": {"message": "Internal Server Error", "type": "internal_error", "event_id": event_id}},
            status_code=500,
        )

    return handle


def _expected(recorder: ErrorRecorder, original: Handler, is_expected: Callable[[Exception], bool]) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_expected(exc):
            recorder.record(exc, level="warning", expected=True)
        return await _call(original, request, exc)

    return handle


def _is_not_found(exc: Exception) -> bool:
    return isinstance(exc, HTTPException) and exc.status_code == 404


def _flushing(
    original: Callable[[Any], AbstractAsyncContextManager[Any]], flush: Callable[[], object]
) -> Callable[[Any], Any]:
    """The app's lifespan, then a bounded flush of pending spans and Sentry events.

    uvicorn re-raises SIGTERM after its graceful shutdown with the default handler restored, so
    the process dies of it and no atexit hook (sentry-sdk's flush, the TracerProvider's shutdown)
    runs: the end of the lifespan is the last moment every uvicorn/gunicorn worker reaches.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            async with original(app) as state:
                yield state
        finally:
            await run_in_threadpool(flush)

    return lifespan


def install_handlers(app: Starlette, recorder: ErrorRecorder, flush: Callable[[], object]) -> None:
    """Wrap the app's handlers once; called just before Starlette builds its middleware stack."""
    if getattr(app, _HANDLERS_SET, False):
        return
    handlers: dict[Any, Handler] = app.exception_handlers
    user_500 = handlers.pop(500, None) or handlers.get(Exception)
    handlers[Exception] = _unhandled(recorder, user_500)
    if HTTPException in handlers:
        handlers[HTTPException] = _expected(recorder, handlers[HTTPException], _is_not_found)
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:  # plain Starlette app
        pass
    else:
        if RequestValidationError in handlers:
            handlers[RequestValidationError] = _expected(recorder, handlers[RequestValidationError], lambda exc: True)
    app.router.lifespan_context = _flushing(app.router.lifespan_context, flush)
    setattr(app, _HANDLERS_SET, True)


def patch_starlette(
    recorder: ErrorRecorder, flush: Callable[[], object], wrap_stack: Callable[[Any], Any] | None = None
) -> None:
    """Make every app built from now on install our handlers (idempotent); ``wrap_stack`` sees the built stack.

    Starlette has no public hook for "an app is being built": ``build_middleware_stack`` is
    wrapped (guarded by a test that fails if Starlette renames it).
    """
    classes: list[type[Starlette]] = [Starlette]
    try:
        from fastapi import FastAPI
    except ImportError:
        pass
    else:
        classes.append(FastAPI)
    for cls in classes:
        original = cls.__dict__.get("build_middleware_stack")
        if original is None or getattr(original, _PATCHED, False):
            continue

        @functools.wraps(original)
        def build_middleware_stack(self: Starlette, _original: Any = original) -> Any:
            install_handlers(self, recorder, flush)
            stack = _original(self)
            return wrap_stack(stack) if wrap_stack is not None else stack

        setattr(build_middleware_stack, _PATCHED, True)
        cls.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
