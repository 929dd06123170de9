"""Each span scrubbed once for every sender; transactions as envelopes, or spans to Sentry's OTLP intake."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from otel_gatewayz._config.settings import load_settings
from otel_gatewayz._privacy import spans as spans_module
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz._privacy.spans import CleanSpans
from otel_gatewayz._sentry.envelopes import TransactionEnvelopes
from otel_gatewayz._sentry.otlp_traces import traces_route
from otel_gatewayz._sentry.transactions import transaction_event
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

    event_id = TransactionEnvelopes(client).send(event)

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


def test_auto_picks_otlp_only_for_sentry_io_without_spotlight():
    saas = "https://key@o1.ingest.us.sentry.io/42"
    assert traces_route(_settings(sentry_dsn=saas)) == "otlp"
    assert traces_route(_settings(sentry_dsn=saas, spotlight=True)) == "envelope"
    assert traces_route(_settings(sentry_dsn="https://key@sentry.example.com/42")) == "envelope"  # self-hosted
    assert traces_route(_settings(sentry_dsn="https://key@notsentry.io/42")) == "envelope"
    assert traces_route(_settings(sentry_dsn=saas, sentry_traces_via="envelope")) == "envelope"
    assert traces_route(_settings(sentry_dsn="http://key@127.0.0.1:9/1", sentry_traces_via="otlp")) == "otlp"
    assert traces_route(_settings(sentry_dsn=None, spotlight=True, sentry_traces_via="otlp")) == "envelope"
