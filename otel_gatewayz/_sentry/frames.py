"""Sentry's exception interface from a capture: frames, source context (cached) and locals.

The locals were snapshotted on the request path (``_errors/values.py``); what is left of them,
objects with their own ``repr``, is rendered here, on the event worker.
"""

from __future__ import annotations

import functools
import linecache
import os
from typing import Any

from sentry_sdk.utils import filename_for_module

from .._errors.capture import ErrorCapture, ExceptionCapture, FrameCapture
from .._errors.values import MAX_VALUE, resolve, truncate

CONTEXT_LINES = 5


@functools.lru_cache(maxsize=4096)
def source_context(abs_path: str, lineno: int) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """(pre_context, context_line, post_context) around ``lineno``, read once per file and line."""
    lines = linecache.getlines(abs_path)
    if not lines or not 1 <= lineno <= len(lines):
        return (), None, ()
    index = lineno - 1
    strip = [
        truncate(line.rstrip("\r\n"), MAX_VALUE)
        for line in lines[max(0, index - CONTEXT_LINES) : index + CONTEXT_LINES + 1]
    ]
    at = min(index, CONTEXT_LINES)
    return tuple(strip[:at]), strip[at], tuple(strip[at + 1 :])


@functools.lru_cache(maxsize=4096)
def _location(module: str | None, filename: str) -> tuple[str | None, str]:
    abs_path = os.path.abspath(filename) if filename else filename
    return filename_for_module(module, abs_path) or None, abs_path


def frame_dict(captured: FrameCapture, with_source: bool = True) -> dict[str, Any]:
    filename, abs_path = _location(captured.module, captured.filename)
    out: dict[str, Any] = {
        "filename": filename,
        "abs_path": abs_path,
        "function": captured.function,
        "module": captured.module,
        "lineno": captured.lineno,
        "in_app": captured.in_app,
    }
    if with_source and abs_path:
        pre, line, post = source_context(abs_path, captured.lineno)
        if line is not None:
            # The cached tuples themselves: the scrub knows them again (``_privacy/events.py``).
            out["pre_context"], out["context_line"], out["post_context"] = pre, line, post
    if captured.local_vars is not None:
        out["vars"] = resolve(captured.local_vars)
    return out


def exception_value(captured: ExceptionCapture, mechanism: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = {
        "mechanism": dict(mechanism),
        "module": captured.type_module,
        "type": captured.type_name,
        "value": captured.value,
    }
    if captured.frames:
        value["stacktrace"] = {"frames": [frame_dict(frame) for frame in captured.frames]}
    return value


def exception_interface(capture: ErrorCapture, mechanism_type: str) -> dict[str, Any]:
    """Sentry's ``exception`` interface, innermost cause first (sentry-sdk's order)."""
    mechanism = {"type": mechanism_type, "handled": capture.report.handled}
    return {"values": [exception_value(exc, mechanism) for exc in capture.chain]}
