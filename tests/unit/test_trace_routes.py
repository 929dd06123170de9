"""Each span scrubbed once for every sender; transactions as envelopes, or spans to Sentry's OTLP intake."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import sentry_sdk
from fastapi import FastAPI
from opentelemetry.trace import format_span_id, format_trace_id
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from otel_gatewayz._config.settings import load_settings
from otel_gatewayz._context.baggage import DscSource, FrozenDsc
from otel_gatewayz._privacy import spans as spans_module
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz._privacy.spans import CleanSpans
from otel_gatewayz._sentry.envelopes import ClientSlot, TransactionEnvelopes
from otel_gatewayz._sentry.routes import traces_route
from otel_gatewayz._sentry.span_items import SpanItemSender, typed
from otel_gatewayz._sentry.transactions import transaction_event
from otel_gatewayz.testing import DEFAULT_ENV, in_process
from tests.unit.test_sentry import finished_spans


def test_a_span_is_scrubbed_once_whichever_sender_asks_first(monkeypatch):
    scrubbed: list[object] = []
    real = spans_module.scrub_span
    monkeypatch.setattr(
        spans_module, "scrub_span", lambda span, scrubber: scrubbed.append(span) or real(span, scrubber)
    )
    clean = CleanSpans(Scrubber())
    root, children = finished_spans()

    first = clean(root)
    again = clean(root)

    assert again is first and scrubbed == [root]  # the second sender gets the same copy
    client = next(c for c in children if c.attributes and "url.full" in c.attributes)
    assert "secret" not in str(clean(client).attributes["url.full"])
    assert client.attributes["url.full"].endswith("key=secret")  # the SDK's span is left as it was


class Recording(Transport):
    """A Sentry transport that keeps what it is handed."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(item.get_bytes()) for envelope in self.envelopes for item in envelope.items]


def test_a_transaction_envelope_carries_what_capture_event_would_add_and_the_dsc_header():
    transport = Recording()
    client = sentry_sdk.Client(
        dsn="http://public@127.0.0.1:9/1", transport=transport, release="api@abc", environment="staging"
    )
    root, children = finished_spans()
    event = transaction_event(root, children, "svc")
    event["contexts"]["trace"]["dynamic_sampling_context"] = {"trace_id": "t", "public_key": "public"}

    event_id = TransactionEnvelopes(ClientSlot(client)).send(event)

    [envelope] = transport.envelopes
    assert envelope.headers["event_id"] == event_id and envelope.headers["trace"]["public_key"] == "public"
    assert "sent_at" in envelope.headers
    [item] = envelope.items
    payload = item.payload.json
    assert item.type == "transaction" and payload["event_id"] == event_id
    assert (payload["release"], payload["environment"], payload["platform"]) == ("api@abc", "staging", "python")
    assert payload["sdk"]["name"] == "sentry.python" and payload["contexts"]["runtime"]["name"]
    assert "dynamic_sampling_context" not in payload["contexts"]["trace"]  # moved to the header, as the SDK does
    assert payload["server_name"]


def _settings(**values: Any):
    return dataclasses.replace(load_settings({}), **values)


@pytest.mark.parametrize(("streams_spans", "saas_route"), [(False, "otlp"), (True, "spans")])
def test_auto_picks_by_destination_and_sdk_major(streams_spans, saas_route):
    def route(**values: Any) -> str:
        return traces_route(_settings(**values), streams_spans)

    saas = "https://key@o1.ingest.us.sentry.io/42"
    assert route(sentry_dsn=saas) == saas_route  # sentry.io: spans on sentry-sdk 3, OTLP on 2.x
    assert route(sentry_dsn=saas, spotlight=True) == "envelope"
    assert route(sentry_dsn="https://key@sentry.example.com/42") == "envelope"  # self-hosted: transactions
    assert route(sentry_dsn="https://key@notsentry.io/42") == "envelope"
    assert route(sentry_dsn=saas, sentry_traces_via="envelope") == "envelope"
    assert route(sentry_dsn="http://key@127.0.0.1:9/1", sentry_traces_via="otlp") == "otlp"
    assert route(sentry_dsn="http://key@127.0.0.1:9/1", sentry_traces_via="spans") == "spans"
    assert route(sentry_dsn=None, spotlight=True, sentry_traces_via="otlp") == "envelope"


def _span_items(transport: Recording) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    [envelope] = transport.envelopes
    [item] = envelope.items
    assert item.type == "span" and item.headers["content_type"] == "application/vnd.sentry.items.span.v2+json"
    payload = json.loads(item.get_bytes())
    assert payload["version"] == 2 and item.headers["item_count"] == len(payload["items"])
    return envelope.headers, payload["items"]


def test_a_local_trace_is_one_envelope_of_span_v2_items_with_the_dsc_header():
    transport = Recording()
    client = sentry_sdk.Client(
        dsn="http://public@127.0.0.1:9/1", transport=transport, release="api@abc", environment="staging"
    )
    clean = CleanSpans(Scrubber())
    root, children = finished_spans()
    dsc = DscSource("public", "api@abc", "staging", 0.25)

    SpanItemSender(ClientSlot(client), dsc)(clean(root), [clean(child) for child in children], None)

    headers, items = _span_items(transport)
    trace_id = format_trace_id(root.context.trace_id)
    assert headers["trace"]["trace_id"] == trace_id and headers["trace"]["public_key"] == "public"
    assert headers["trace"]["transaction"] == "POST /v1/chat/completions" and headers["trace"]["sample_rate"] == "0.25"
    assert "event_id" not in headers  # span envelopes have none, as sentry-sdk 3 sends them
    segment, *rest = items
    assert segment["is_segment"] is True and "parent_span_id" not in segment
    assert segment["name"] == "POST /v1/chat/completions" and segment["status"] == "error"  # answered 502
    attrs = segment["attributes"]
    assert attrs["sentry.op"] == {"value": "http.server", "type": "string"}
    assert attrs["sentry.segment.name.source"]["value"] == "route"
    assert attrs["sentry.release"]["value"] == "api@abc" and attrs["sentry.environment"]["value"] == "staging"
    assert attrs["http.response.status_code"] == {"value": 502, "type": "integer"}
    assert attrs["user.id"]["value"] == "u1"
    assert "process.command_args" not in attrs  # native 3.x sends argv; ours never does
    segment_id = format_span_id(root.context.span_id)
    for item in rest:
        assert item["is_segment"] is False and item["parent_span_id"] == segment_id
        assert item["trace_id"] == trace_id and item["end_timestamp"] >= item["start_timestamp"]
        assert item["attributes"]["sentry.segment.id"]["value"] == segment_id
    client_span = next(i for i in rest if i["attributes"]["sentry.op"]["value"] == "http.client")
    assert client_span["status"] == "ok" and "secret" not in json.dumps(client_span)  # the clean copy
    work = next(i for i in rest if i["name"] == "work")
    assert work["status"] == "error"  # an OTel ERROR status without an HTTP code


def test_a_caller_dsc_is_kept_byte_for_byte_on_span_envelopes():
    transport = Recording()
    client = sentry_sdk.Client(dsn="http://public@127.0.0.1:9/1", transport=transport)
    root, children = finished_spans()
    trace_id = format_trace_id(root.context.trace_id)
    values = {"trace_id": trace_id, "public_key": "upstream", "sample_rate": "0.5", "sampled": "true"}
    frozen = FrozenDsc(tuple(f"sentry-{k}={v}" for k, v in values.items()), values)

    SpanItemSender(ClientSlot(client), DscSource("public", "r", "e", 1.0))(root, children, frozen)

    headers, _ = _span_items(transport)
    assert headers["trace"] == values


@pytest.mark.parametrize("value", [True, 3, 2.5, "s", ("a", "b"), [1, 2], [], ("a", 1)])
def test_attribute_values_are_typed_as_sentry_sdk_3_types_them(value):
    serialize_attribute = getattr(sentry_sdk.utils, "serialize_attribute", None)
    expected = {
        True: {"value": True, "type": "boolean"},
        3: {"value": 3, "type": "integer"},
        2.5: {"value": 2.5, "type": "double"},
        "s": {"value": "s", "type": "string"},
    }
    ours = typed(value)
    if serialize_attribute is not None and not isinstance(value, tuple):  # 3.x: its own writer is the reference
        assert ours == serialize_attribute(value)
    elif isinstance(value, (bool, int, float, str)):
        assert ours == expected[value]
    elif isinstance(value, tuple) and len({type(v) for v in value}) > 1:
        assert ours["type"] == "string"  # mixed arrays are not a v2 type
    else:
        assert ours == {"value": list(value), "type": "array"}


@pytest.mark.parametrize("dsn", ["https://public@o1.ingest.sentry.io/1", "https://public@sentry.example.com/1"])
def test_route_none_sends_sentry_errors_linked_to_the_trace_and_no_trace(dsn):
    """``GATEWAYZ_SENTRY_TRACES_VIA=none`` (a collector tier keeps the traces): errors only, on any DSN."""
    assert traces_route(load_settings({"SENTRY_DSN": dsn, "GATEWAYZ_SENTRY_TRACES_VIA": "none"}), True) == "none"
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with in_process({**DEFAULT_ENV, "SENTRY_DSN": dsn, "GATEWAYZ_SENTRY_TRACES_VIA": "none"}) as gatewayz:
        client = gatewayz.client(app)
        assert client.get("/ok").status_code == 200
        assert client.get("/boom").status_code == 500
        [event] = gatewayz.events()
        assert gatewayz.transactions() == [] and gatewayz.sentry_spans() == []
        # OpenTelemetry still exports both traces; the error names its own.
        spans = {span.name: span for span in gatewayz.spans()}
        assert set(spans) == {"GET /ok", "GET /boom"}
        assert event["contexts"]["trace"]["trace_id"] == format_trace_id(spans["GET /boom"].context.trace_id)
