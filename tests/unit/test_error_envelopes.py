"""Error events sent without ``capture_event``: what the SDK's own path would send, byte for byte in content."""

from __future__ import annotations

import json
import logging
import sys
from decimal import Decimal
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.integrations.argv import ArgvIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.modules import ModulesIntegration
from sentry_sdk.integrations.stdlib import StdlibIntegration

from otel_gatewayz._context.state import RequestState, new_breadcrumb
from otel_gatewayz._errors.capture import ErrorReport, InApp, capture_error
from otel_gatewayz._errors.grouping import ErrorGrouper
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz._sentry.enrichment import SentryHooks
from otel_gatewayz._sentry.envelopes import ClientSlot
from otel_gatewayz._sentry.error_envelopes import ErrorEnvelopes
from otel_gatewayz._sentry.errors import CAPTURE_HINT, build_event
from tests.unit.test_trace_routes import Recording

STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"


class Opaque:
    """Not JSON: the serialiser would ``repr`` it; so must the direct path, and scrub that text."""

    def __repr__(self) -> str:
        return f"Opaque(token={STRIPE_KEY})"


def sdk_capture_event(event: dict[str, Any], hint: dict[str, Any]) -> str | None:
    """sentry-sdk's own path (scope, serialiser, ``before_send``): the reference the direct envelope matches."""
    return sentry_sdk.capture_event(event, hint=hint)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch):
    # sentry-sdk's serialiser keeps 10 items of a list, the direct path all: an argv under 10 items
    # (what the argv integration adds) compares the two paths, not that bound (a known difference).
    monkeypatch.setattr(sys, "argv", ["pytest", "tests/unit/test_error_envelopes.py"])
    transport = Recording()
    scrubber = Scrubber()
    hooks = SentryHooks(scrubber, ErrorGrouper(), "svc")
    # The default integrations that add to events; not logging's, which would stay patched in.
    sdk_client = sentry_sdk.Client(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        release="api@abc",
        environment="staging",
        before_send=hooks.before_send,
        default_integrations=False,
        integrations=[ArgvIntegration(), DedupeIntegration(), ModulesIntegration(), StdlibIntegration()],
    )
    sentry_sdk.get_global_scope().set_client(sdk_client)
    try:
        yield sdk_client, transport, hooks, scrubber
    finally:
        sdk_client.close()
        sentry_sdk.get_global_scope().set_client(None)


def _state(crumb: Any = "plain", **request: Any) -> RequestState:
    state = RequestState(root_span=None, scope=None)
    state.user.update({"id": "u1", "email": "u1@example.com", "credits": 12.5, "plan": "pro"})
    state.request.update({"endpoint": "/v1/chat/completions", "model": "gpt-4o-mini", **request})
    state.breadcrumbs.append(new_breadcrumb("provider call", "provider", "info", {"value": crumb}))
    return state


def _hint(state: RequestState) -> dict[str, Any]:
    try:
        api_key = STRIPE_KEY  # noqa: F841 - a local the event shows, scrubbed
        raise ValueError("provider down")
    except ValueError as exc:
        capture = capture_error(
            exc,
            ErrorReport(
                ("ValueError", "provider_error"),
                handled=False,
                tags={"error_type": "provider_error"},
                contexts={"error_context": {"attempt": 2}},
                state=state,
            ),
            event_id="c" * 32,
            trace_ids=("1" * 32, "2" * 16),
            in_app=InApp(),
            with_locals=True,
        )
        return {CAPTURE_HINT: capture}  # as the event worker hands it: no exception, so no dedupe


def test_the_direct_envelope_holds_what_capture_event_would_send(client):
    sdk_client, transport, hooks, scrubber = client
    hint = _hint(_state())
    direct = ErrorEnvelopes(ClientSlot(sdk_client), hooks.prepare_event, scrubber.scrub_text)
    assert direct.send(build_event(hint[CAPTURE_HINT]), hint) == "c" * 32
    assert sdk_capture_event(build_event(hint[CAPTURE_HINT]), hint) == "c" * 32

    ours, native = transport.payloads()
    assert [e.headers["event_id"] for e in transport.envelopes] == ["c" * 32] * 2
    assert [item.type for e in transport.envelopes for item in e.items] == ["event", "event"]
    # Every field, every value (scopes, processors, static fields, both scrubbers, our hooks), but
    # the SDK serialiser's ``_meta`` note on what its scrubber filtered.
    assert ours == {key: value for key, value in native.items() if key != "_meta"}
    assert ours["exception"]["values"][0]["stacktrace"]["frames"][-1]["vars"]["api_key"] == "[REDACTED]"
    assert ours["modules"] and ours["extra"]["sys.argv"] and ours["contexts"]["runtime"]["name"]
    assert (ours["release"], ours["environment"], ours["platform"]) == ("api@abc", "staging", "python")
    assert ours["user"]["id"] == "u1" and ours["contexts"]["request"]["model"] == "gpt-4o-mini"
    assert STRIPE_KEY not in json.dumps(ours)  # the frame's local, scrubbed


def _send(client: Any, direct: bool, hint: dict[str, Any]) -> None:
    sdk_client, _transport, hooks, scrubber = client
    if direct:
        ErrorEnvelopes(ClientSlot(sdk_client), hooks.prepare_event, scrubber.scrub_text).send(
            build_event(hint[CAPTURE_HINT]), hint
        )
    else:
        sdk_capture_event(build_event(hint[CAPTURE_HINT]), hint)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "sdk capture_event"])
def test_an_object_json_cannot_hold_is_sent_as_its_scrubbed_repr(client, direct):
    """Context is added after the SDK's serialiser ran: unserialised, one object lost the whole event."""
    transport = client[1]
    _send(client, direct, _hint(_state(crumb=Opaque(), price=Decimal("0.25"))))
    [event] = transport.payloads()
    assert event["breadcrumbs"]["values"][0]["data"]["value"].startswith("Opaque(token=")
    assert event["contexts"]["request"]["price"] == "Decimal('0.25')"
    assert STRIPE_KEY not in json.dumps(event)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "sdk capture_event"])
def test_a_nan_goes_through_the_sdk_serialiser_and_is_not_lost(client, caplog, direct):
    transport = client[1]
    with caplog.at_level(logging.INFO, logger="otel_gatewayz"):
        _send(client, direct, _hint(_state(cost=float("nan"))))
    [event] = transport.payloads()
    assert event["contexts"]["request"]["cost"] == "nan"  # as the SDK's serialiser writes it
    assert STRIPE_KEY not in json.dumps(event)
    assert not direct or "it went through sentry-sdk's serialiser" in caplog.text


def test_a_dropped_event_is_reported_as_lost(client):
    sdk_client, transport, _hooks, scrubber = client
    lost: list[tuple[str, str]] = []
    transport.record_lost_event = lambda reason, data_category=None, **_: lost.append((reason, data_category))
    direct = ErrorEnvelopes(ClientSlot(sdk_client), lambda event, hint: None, scrubber.scrub_text)
    hint = _hint(_state())
    assert direct.send(build_event(hint[CAPTURE_HINT]), hint) is None
    assert transport.envelopes == [] and lost == [("before_send", "error")]


def test_an_event_without_an_id_gets_one(client):
    """The suppressed-errors summary is built without one, as ``capture_event`` allows."""
    sdk_client, transport, hooks, scrubber = client
    direct = ErrorEnvelopes(ClientSlot(sdk_client), hooks.prepare_event, scrubber.scrub_text)
    event_id = direct.send({"level": "warning", "message": "3 errors not sent in full"}, {})
    [payload] = transport.payloads()
    assert event_id and payload["event_id"] == event_id == transport.envelopes[0].headers["event_id"]
    assert payload["message"] == "3 errors not sent in full"
