"""Sentry event scrubbing: every value but ids, with a record of what was redacted (paths, a count)."""

from __future__ import annotations

import functools
from typing import Any

from .scrubber import Scrubber, ScrubReport

# Values Sentry needs verbatim; hex ids could look like card numbers to the value patterns.
VERBATIM_KEYS = frozenset(
    {"event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp", "release", "environment"}
)
Event = dict[str, Any]
# A frame's source lines: the same tuples (``_sentry/frames.py`` caches them) on every event.
_SOURCE_KEYS = ("pre_context", "context_line", "post_context")
# Values sentry-sdk puts on every event as the same object (``modules``: its cached list of
# installed packages): scrubbed once, the copy and its report reused while the object is.
_SAME_EVERY_TIME = frozenset({"modules"})
_scrubbed_once: dict[str, tuple[Scrubber, object, Any, list[str]]] = {}


def scrub_event(event: Event, scrubber: Scrubber) -> Event:
    """Scrub every value of ``event`` except ids; ``extra.gatewayz_scrubbed`` says what was redacted."""
    report = ScrubReport()
    scrubbed: Event = {}
    for key, value in event.items():
        if key in VERBATIM_KEYS:
            scrubbed[key] = value
        elif key == "contexts" and isinstance(value, dict):
            scrubbed[key] = {name: _scrub_context(name, ctx, scrubber, report) for name, ctx in value.items()}
        elif key in _SAME_EVERY_TIME:
            scrubbed[key] = _scrub_once(key, value, scrubber, report)
        elif key == "exception":
            scrubbed[key] = _scrub_exception(value, scrubber, report)
        else:
            scrubbed[key] = scrubber.scrub(value, report, key)
    if report.count:
        extra = scrubbed.setdefault("extra", {})
        if isinstance(extra, dict):
            extra["gatewayz_scrubbed"] = {"count": report.count, "paths": report.paths}
    return scrubbed


def _scrub_exception(value: Any, scrubber: Scrubber, report: ScrubReport) -> Any:
    """Sentry's exception interface, each frame's source lines through a memo (the rest as any value)."""
    values = value.get("values") if isinstance(value, dict) else None
    if not isinstance(values, list):
        return scrubber.scrub(value, report, "exception")
    out = scrubber.scrub({k: v for k, v in value.items() if k != "values"}, report, "exception")
    out["values"] = [
        _scrub_exception_value(item, scrubber, report, f"exception.values[{i}]") for i, item in enumerate(values)
    ]
    return out


def _scrub_exception_value(value: Any, scrubber: Scrubber, report: ScrubReport, path: str) -> Any:
    stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
    if not isinstance(stacktrace, dict) or not isinstance(stacktrace.get("frames"), list):
        return scrubber.scrub(value, report, path)
    frames: list[Any] = stacktrace["frames"]
    out = scrubber.scrub({k: v for k, v in value.items() if k != "stacktrace"}, report, path)
    at = f"{path}.stacktrace"
    out["stacktrace"] = scrubber.scrub({k: v for k, v in stacktrace.items() if k != "frames"}, report, at)
    out["stacktrace"]["frames"] = [
        _scrub_frame(frame, scrubber, report, f"{at}.frames[{i}]") for i, frame in enumerate(frames)
    ]
    return out


def _scrub_frame(frame: Any, scrubber: Scrubber, report: ScrubReport, path: str) -> Any:
    if not isinstance(frame, dict):
        return scrubber.scrub(frame, report, path)
    out = scrubber.scrub({k: v for k, v in frame.items() if k not in _SOURCE_KEYS}, report, path)
    for key in _SOURCE_KEYS:
        if key not in frame:
            continue
        lines = frame[key]
        if not isinstance(lines, (str, tuple)):  # not the cached source (another SDK's event): as any value
            out[key] = scrubber.scrub(lines, report, f"{path}.{key}")
            continue
        out[key], hits = _scrubbed_source(scrubber, lines)
        for hit in hits:
            report.add(f"{path}.{key}{hit}")
    return out


@functools.lru_cache(maxsize=4096)
def _scrubbed_source(scrubber: Scrubber, lines: str | tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """Source lines, scrubbed as any value would be, once per file and line; with where it hit."""
    own = ScrubReport()
    if isinstance(lines, str):
        return scrubber.scrub(lines, own, ""), ("",) if own.count else ()
    scrubbed, hits = [], []
    for index, line in enumerate(lines):
        before = own.count
        scrubbed.append(scrubber.scrub(line, own, ""))
        if own.count > before:
            hits.append(f"[{index}]")
    return tuple(scrubbed), tuple(hits)


def _scrub_once(key: str, value: Any, scrubber: Scrubber, report: ScrubReport) -> Any:
    known = _scrubbed_once.get(key)
    if known is None or known[0] is not scrubber or known[1] is not value:
        own = ScrubReport()
        known = (scrubber, value, scrubber.scrub(value, own, key), own.paths)
        _scrubbed_once[key] = known
    for path in known[3]:
        report.add(path)
    return known[2]


def _scrub_context(name: str, ctx: Any, scrubber: Scrubber, report: ScrubReport) -> Any:
    if name != "trace":
        return scrubber.scrub(ctx, report, f"contexts.{name}")
    # The trace context's ids stay verbatim; its span data is scrubbed like any attribute.
    if isinstance(ctx, dict) and "data" in ctx:
        return dict(ctx, data=scrubber.scrub(ctx.get("data"), report, "contexts.trace.data"))
    return ctx
