"""The global exception handler, installed into every Starlette/FastAPI app without code changes.

An unhandled exception is recorded once (span, metric, Sentry event) and answered with a 500
JSON body carrying the Sentry event id; a handler the app registered for ``Exception`` or 500
still produces the response. An exception any other handler answers with a failed status
(``GATEWAYZ_FAILED_REQUEST_STATUS_CODES``, 5xx by default: ``HTTPException(502)``) is recorded
the same way, never as expected. 404s and request-validation errors are counted, and sent to
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
        event_id = recorder.record(exc, handled=False, record_on_span=False, server_error=True)
        if user_handler is not None:
            return await _call(user_handler, request, exc)
        return JSONResponse(
            {"error": {"message": "Internal Server Error", "type": "internal_error", "event_id": event_id}},
            status_code=500,
        )

    return handle


def _answered(recorder: ErrorRecorder, original: Handler, is_expected: Callable[[Exception], bool]) -> Handler:
    """The app's handler, then: a failed status is an error; an expected one (404...) is counted."""

    async def handle(request: Request, exc: Exception) -> Response:
        failed = recorder.is_failed_status(_declared_status(exc))
        if not failed and is_expected(exc):
            recorder.record(exc, level="warning", expected=True)
        response = await _call(original, request, exc)
        if failed or recorder.is_failed_status(response.status_code):
            recorder.record(exc, handled=False, server_error=True)
        return response

    return handle


def _declared_status(exc: Exception) -> int:
    status = getattr(exc, "status_code", 0)
    return status if isinstance(exc, HTTPException) and isinstance(status, int) else 0


def _is_not_found(exc: Exception) -> bool:
    return isinstance(exc, HTTPException) and exc.status_code == 404


def _never(exc: Exception) -> bool:
    return False


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
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:  # plain Starlette app
        validation: Any = None
    else:
        validation = RequestValidationError
    for key, handler in list(handlers.items()):
        expected = _is_not_found if key is HTTPException else (lambda exc: True) if key is validation else _never
        handlers[key] = _answered(recorder, handler, expected)
    handlers[Exception] = _unhandled(recorder, user_500)
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
