"""Locals rendered within a size bound, snapshotted when the error is captured.

Each local is rendered within a size bound that stops walking as soon as the bound is reached
(a 50 MB list costs what a short one does): containers as nested values of at most
``MAX_BREADTH`` items to ``MAX_DEPTH`` levels (so key-name scrubbing still sees their keys),
strings sliced before ``repr``, dataclasses and pydantic models field by field; other objects
through their own ``repr``, truncated (their ``__repr__`` is theirs to bound). A value whose
rendering fails, or that another thread changes meanwhile, becomes a placeholder.

The request path takes a :func:`snapshot`: containers, strings and numbers are copied within
the bounds there and then, so the event shows them as they were when the error happened and a
huge local is not kept alive (nor freed on another thread) until its event is built. Only
objects whose ``repr`` is Python code are kept, as :class:`Deferred`, and rendered by
:func:`resolve` on the event worker: a ``repr`` can be as slow as its author made it
(getsentry/sentry-python#6649: FastAPI's router graph), so it stays off the request path.
"""

from __future__ import annotations

import dataclasses
import types
from collections import deque
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 5  # sentry-sdk's MAX_DATABAG_DEPTH
MAX_BREADTH = 10  # sentry-sdk's MAX_DATABAG_BREADTH
MAX_VALUE = 512  # characters of one rendered leaf
MAX_VARS = 50  # locals per frame
_SEQUENCES = (list, tuple, set, frozenset, deque)
_OBJECT_REPR: Any = object.__repr__


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bounded_repr(value: Any, limit: int) -> str:
    """``repr(value)`` within ``limit`` characters; strings and bytes are sliced before, not after."""
    if isinstance(value, str):
        return truncate(repr(value[:limit]), limit) if len(value) > limit else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return truncate(repr(bytes(value[:limit])), limit)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3000:
        return f"<int of {value.bit_length()} bits>"
    if value is None or isinstance(value, (bool, int, float, complex)):
        return repr(value)
    cls = type(value)
    if cls.__repr__ is _OBJECT_REPR:
        return f"<{cls.__module__}.{cls.__qualname__} object at {id(value):#x}>"
    return truncate(repr(value), limit)


def _fields(value: Any) -> Mapping[str, Any] | None:
    """The fields a dataclass or pydantic model prints in its repr (None for other objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value) if f.repr}
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(value, "__pydantic_fields_set__"):
        return {name: getattr(value, name, None) for name in model_fields}
    return None


class Deferred:
    """An object with its own ``repr`` or fields, rendered on the event worker (:func:`resolve`)."""

    __slots__ = ("depth", "limit", "value")

    def __init__(self, value: Any, depth: int, limit: int) -> None:
        self.value = value
        self.depth = depth
        self.limit = limit


def _own_rendering(value: Any) -> bool:
    """True for an object whose ``repr`` is Python code (its author's; dataclasses and pydantic models too).

    Exceptions are rendered at once whatever their ``repr``: a deferred one would keep its
    traceback, and every frame's locals with it, alive until the event is built.
    """
    if value is None or isinstance(value, (str, bytes, bytearray, bool, int, float, complex, BaseException)):
        return False
    return isinstance(type(value).__repr__, types.FunctionType)


def render(value: Any, depth: int = 0, limit: int = MAX_VALUE, defer: bool = False) -> Any:
    """``value`` as Sentry's databag: nested dicts/lists of bounded strings.

    ``defer``: objects with their own rendering become :class:`Deferred` instead (a snapshot).
    """
    try:
        if isinstance(value, Mapping) and not isinstance(value, type):
            if depth >= MAX_DEPTH:
                return f"<{type(value).__name__} of {len(value)} items>"
            out: dict[str, Any] = {}
            for index, (key, item) in enumerate(value.items()):
                if index >= MAX_BREADTH:
                    out["..."] = f"{len(value) - MAX_BREADTH} more"
                    break
                out[key if isinstance(key, str) else bounded_repr(key, 64)] = render(item, depth + 1, limit, defer)
            return out
        if isinstance(value, _SEQUENCES):
            if depth >= MAX_DEPTH:
                return f"<{type(value).__name__} of {len(value)} items>"
            items = [render(item, depth + 1, limit, defer) for item, _ in zip(value, range(MAX_BREADTH), strict=False)]
            if len(value) > MAX_BREADTH:
                items.append(f"... {len(value) - MAX_BREADTH} more")
            return items
        if defer and _own_rendering(value):
            return Deferred(value, depth, limit)
        fields = _fields(value)
        if fields is not None:
            parts: list[str] = []
            size = 0
            for name, item in fields.items():
                shown = _compact(item) if isinstance(item, (Mapping, *_SEQUENCES)) else bounded_repr(item, limit)
                text = f"{name}={shown}"
                parts.append(text)
                size += len(text) + 2
                if size >= limit:
                    break
            return truncate(f"{type(value).__name__}({', '.join(parts)})", limit)
        return bounded_repr(value, limit)
    except Exception:  # noqa: BLE001 - a value that cannot be shown must not lose the event
        return "<unrepresentable>"


def _compact(value: Any) -> str:
    """A container inside an object's fields, as one bounded string."""
    rendered = render(value, MAX_DEPTH - 1, 128)
    return truncate(str(rendered), 256)


def snapshot(local_vars: Mapping[str, Any]) -> dict[str, Any]:
    """A frame's locals as they are now, within the bounds; objects with their own rendering deferred."""
    out: dict[str, Any] = {}
    for index, (name, value) in enumerate(local_vars.items()):
        if index >= MAX_VARS:
            break
        out[name] = render(value, 1, defer=True)
    return out


def resolve(snapped: Any) -> Any:
    """A snapshot with its deferred objects rendered (on the event worker)."""
    if isinstance(snapped, Deferred):
        return render(snapped.value, snapped.depth, snapped.limit)
    if isinstance(snapped, dict):
        return {key: resolve(item) for key, item in snapped.items()}
    if isinstance(snapped, list):
        return [resolve(item) for item in snapped]
    return snapped
