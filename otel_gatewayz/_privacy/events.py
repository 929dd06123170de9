"""Sentry event scrubbing: every value but ids, with a record of what was redacted (paths, a count)."""

from __future__ import annotations

from typing import Any

from .scrubber import Scrubber, ScrubReport

# Values Sentry needs verbatim; hex ids could look like card numbers to the value patterns.
VERBATIM_KEYS = frozenset(
    {"event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp", "release", "environment"}
)
Event = dict[str, Any]
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
        else:
            scrubbed[key] = scrubber.scrub(value, report, key)
    if report.count:
        extra = scrubbed.setdefault("extra", {})
        if isinstance(extra, dict):
            extra["gatewayz_scrubbed"] = {"count": report.count, "paths": report.paths}
    return scrubbed


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
