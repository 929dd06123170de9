"""Sentry's exception interface from a capture: frames, source context (cached) and bounded locals.

Each local is rendered within a size bound that stops walking as soon as the bound is reached
(a 50 MB list costs what a short one does): containers as nested values of at most
``MAX_BREADTH`` items to ``MAX_DEPTH`` levels (so key-name scrubbing still sees their keys),
strings sliced before ``repr``, dataclasses and pydantic models field by field; other objects
through their own ``repr``, truncated (their ``__repr__`` is theirs to bound). A value whose
rendering fails, or that another thread changes meanwhile, becomes a placeholder.
"""

from __future__ import annotations

import dataclasses
import functools
import linecache
import os
from collections import deque
from collections.abc import Mapping
from typing import Any

from sentry_sdk.utils import filename_for_module, get_error_message, get_type_module, get_type_name

from .._errors.capture import ErrorCapture, ExceptionCapture, FrameCapture

MAX_DEPTH = 5  # sentry-sdk's MAX_DATABAG_DEPTH
MAX_BREADTH = 10  # sentry-sdk's MAX_DATABAG_BREADTH
MAX_VALUE = 512  # characters of one rendered leaf
MAX_VARS = 50  # locals per frame
CONTEXT_LINES = 5
_SEQUENCES = (list, tuple, set, frozenset, deque)
_OBJECT_REPR: Any = object.__repr__


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaf(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return _truncate(repr(value[:limit]), limit) if len(value) > limit else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return _truncate(repr(bytes(value[:limit])), limit)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3000:
        return f"<int of {value.bit_length()} bits>"
    if value is None or isinstance(value, (bool, int, float, complex)):
        return repr(value)
    cls = type(value)
    if cls.__repr__ is _OBJECT_REPR:
        return f"<{cls.__module__}.{cls.__qualname__} object at {id(value):#x}>"
    return _truncate(repr(value), limit)


def _fields(value: Any) -> Mapping[str, Any] | None:
    """The fields a dataclass or pydantic model prints in its repr (None for other objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value) if f.repr}
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "__pydantic_fields_set__"):
        return {name: getattr(value, name, None) for name in model_fields}
    return None


def render(value: Any, depth: int = 0, limit: int = MAX_VALUE) -> Any:
    """``value`` as Sentry's databag: nested dicts/lists of bounded strings."""
    try:
        if isinstance(value, Mapping) and not isinstance(value, type):
            if depth >= MAX_DEPTH:
                return f"<{type(value).__name__} of {len(value)} items>"
            out: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= MAX_BREADTH:
                    out["..."] = f"{len(value) - MAX_BREADTH} more"
                    break
                out[key if isinstance(key, str) else _leaf(key, 64)] = render(item, depth + 1, limit)
            return out
        if isinstance(value, _SEQUENCES):
            if depth >= MAX_DEPTH:
                return f"<{type(value).__name__} of {len(value)} items>"
            items = [render(item, depth + 1, limit) for item, _ in zip(value, range(MAX_BREADTH), strict=False)]
            if len(value) > MAX_BREADTH:
                items.append(f"... {len(value) - MAX_BREADTH} more")
            return items
        fields = _fields(value)
        if fields is not None:
            parts: list[str] = []
            size = 0
            for name, item in fields.items():
                text = (
                    f"{name}={_leaf(item, limit) if not isinstance(item, (Mapping, *_SEQUENCES)) else _compact(item)}"
                )
                parts.append(text)
                size += len(text) + 2
                if size >= limit:
                    break
            return _truncate(f"{type(value).__name__}({', '.join(parts)})", limit)
        return _leaf(value, limit)
    except Exception:  # noqa: BLE001 - a value that cannot be shown must not lose the event
        return "<unrepresentable>"


def _compact(value: Any) -> str:
    """A container inside an object's fields, as one bounded string."""
    rendered = render(value, MAX_DEPTH - 1, 128)
    return _truncate(str(rendered), 256)


def render_vars(local_vars: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index, (name, value) in enumerate(local_vars.items()):
        if index >= MAX_VARS:
            break
        out[name] = render(value, 1)
    return out


@functools.lru_cache(maxsize=4096)
def source_context(abs_path: str, lineno: int) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """(pre_context, context_line, post_context) around ``lineno``, read once per file and line."""
    lines = linecache.getlines(abs_path)
    if not lines or not 1 <= lineno <= len(lines):
        return (), None, ()
    index = lineno - 1
    strip = [
        _truncate(line.rstrip("\r\n"), MAX_VALUE)
        for line in lines[max(0, index - CONTEXT_LINES) : index + CONTEXT_LINES + 1]
    ]
    at = min(index, CONTEXT_LINES)
    return tuple(strip[:at]), strip[at], tuple(strip[at + 1 :])


@functools.lru_cache(maxsize=4096)
def _location(module: str | None, filename: str) -> tuple[str | None, str]:
    abs_path = os.path.abspath(filename) if filename else filename
    return filename_for_module(module, abs_path) or None, abs_path


def frame_dict(captured: FrameCapture, with_source: bool = True) -> dict[str, Any]:
    frame = captured.frame
    code = frame.f_code
    module = frame.f_globals.get("__name__")
    filename, abs_path = _location(module if isinstance(module, str) else None, code.co_filename)
    out: dict[str, Any] = {
        "filename": filename,
        "abs_path": abs_path,
        "function": code.co_name or "<unknown>",
        "module": module,
        "lineno": captured.lineno,
        "in_app": captured.in_app,
    }
    if with_source and abs_path:
        pre, line, post = source_context(abs_path, captured.lineno)
        if line is not None:
            out["pre_context"], out["context_line"], out["post_context"] = list(pre), line, list(post)
    if captured.local_vars is not None:
        out["vars"] = render_vars(captured.local_vars)
    return out


def exception_value(captured: ExceptionCapture, mechanism: dict[str, Any]) -> dict[str, Any]:
    exc = captured.exc
    value: dict[str, Any] = {
        "mechanism": dict(mechanism),
        "module": get_type_module(type(exc)),
        "type": get_type_name(type(exc)),
        "value": get_error_message(exc),
    }
    if captured.frames:
        value["stacktrace"] = {"frames": [frame_dict(frame) for frame in captured.frames]}
    return value


def exception_interface(capture: ErrorCapture, mechanism_type: str) -> dict[str, Any]:
    """Sentry's ``exception`` interface, innermost cause first (sentry-sdk's order)."""
    mechanism = {"type": mechanism_type, "handled": capture.handled}
    return {"values": [exception_value(exc, mechanism) for exc in capture.chain]}
