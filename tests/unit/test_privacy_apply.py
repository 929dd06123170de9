"""Where the scrubber is applied: Sentry events (ids kept) and spans (every text field)."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_gatewayz._privacy.events import scrub_event
from otel_gatewayz._privacy.scrubber import MARKER, Scrubber
from otel_gatewayz._privacy.spans import scrub_span

KEY = "sk-" + "A1b2C3d4" * 4
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_event_scrubbing_keeps_ids_and_redacts_everything_else():
    event = {
        "event_id": "1234567890123456",  # digits that look like a card number stay: an id
        "contexts": {
            "trace": {"trace_id": TRACE_ID, "span_id": "00f067aa0ba902b7", "data": {"authorization": KEY}},
            "request": {"headers": {"Authorization": f"Bearer {KEY}"}},
        },
        "exception": {"values": [{"value": f"provider said: invalid key {KEY}"}]},
        "extra": {"sys.argv": ["uvicorn", f"--key={KEY}"]},
        "release": "svc@abc",
    }

    scrubbed = scrub_event(event, Scrubber())

    text = repr(scrubbed)
    assert KEY not in text
    assert scrubbed["event_id"] == event["event_id"] and scrubbed["release"] == "svc@abc"
    assert scrubbed["contexts"]["trace"]["trace_id"] == TRACE_ID
    assert scrubbed["contexts"]["trace"]["data"]["authorization"] == MARKER
    report = scrubbed["extra"]["gatewayz_scrubbed"]
    assert report["count"] == len(report["paths"]) >= 4
    assert "contexts.trace.data.authorization" in report["paths"]
    assert event["exception"]["values"][0]["value"].endswith(KEY)  # the input is not modified


def test_the_installed_modules_are_scrubbed_once_per_object_and_reported_every_time():
    """sentry-sdk hands every event the same ``modules`` dict: scrubbed once; a new dict is scrubbed anew."""
    scrubber = Scrubber()
    modules = {"fastapi": "0.165.0", "leaky": f"1.0+{KEY}"}
    first, second = (scrub_event({"modules": modules}, scrubber) for _ in range(2))
    assert first["modules"] is second["modules"] and KEY not in repr(second)
    assert first["extra"] == second["extra"] and second["extra"]["gatewayz_scrubbed"]["paths"] == ["modules.leaky"]
    other = scrub_event({"modules": {"other": KEY}}, scrubber)
    assert other["modules"] == {"other": MARKER} and other["extra"]["gatewayz_scrubbed"]["paths"] == ["modules.other"]


def test_source_lines_are_scrubbed_once_per_line_and_reported_on_every_event():
    """A hard-coded key in a frame's source: redacted (and its path reported) on each event, scanned once."""
    scrubber = Scrubber()
    pre, line = (f'API_KEY = "{KEY}"', "def call():"), "    raise ValueError(API_KEY)"

    def event(pre_context: object) -> dict[str, object]:
        frame = {"function": "call", "pre_context": pre_context, "context_line": line, "vars": {"token": KEY}}
        return {"exception": {"values": [{"type": "ValueError", "value": KEY, "stacktrace": {"frames": [frame]}}]}}

    first, second, as_list = (scrub_event(event(p), scrubber) for p in (pre, pre, list(pre)))
    for scrubbed in (first, second, as_list):
        assert KEY not in repr(scrubbed)
        frame = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
        assert frame["context_line"] == line and frame["vars"]["token"] == MARKER
        assert list(frame["pre_context"]) == [f'API_KEY = "{MARKER}"', "def call():"]
        assert set(scrubbed["extra"]["gatewayz_scrubbed"]["paths"]) == {
            "exception.values[0].value",
            "exception.values[0].stacktrace.frames[0].vars.token",
            "exception.values[0].stacktrace.frames[0].pre_context[0]",
        }
    assert (
        first["exception"]["values"][0]["stacktrace"]["frames"][0]["pre_context"]
        is (second["exception"]["values"][0]["stacktrace"]["frames"][0]["pre_context"])
    )  # the memo's copy


def test_span_scrubbing_covers_name_attributes_events_links_and_status():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(
        f"GET /keys/{KEY}",
        attributes={
            "http.request.header.authorization": ("Bearer x",),
            "url.full": f"https://h/x?api_key={KEY}",
            "gen_ai.usage.input_tokens": 12,
        },
    ) as span:
        span.add_event("provider error", {"exception.message": f"bad key {KEY}"})
        span.set_status(Status(StatusCode.ERROR, f"failed with {KEY}"))
    [original] = exporter.get_finished_spans()

    clean = scrub_span(original, Scrubber())

    assert KEY not in repr(
        (clean.name, dict(clean.attributes), [dict(e.attributes) for e in clean.events], clean.status.description)
    )
    assert clean.attributes["http.request.header.authorization"] == (MARKER,)
    assert clean.attributes["gen_ai.usage.input_tokens"] == 12
    assert clean.attributes["gatewayz.scrubbed.count"] >= 4
    assert (clean.context, clean.parent, clean.start_time, clean.end_time) == (
        original.context,
        original.parent,
        original.start_time,
        original.end_time,
    )
