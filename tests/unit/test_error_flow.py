"""The example gateway's error paths in-process (the ``gatewayz`` fixture): what reaches Sentry, what is counted.

These check our logic (capture_errors, expected errors, production filtering, which traces an error
keeps), so no process or server is started; tests/e2e/test_error_context.py keeps what needs a
real one (Bugsink's grouping, concurrency and streaming through uvicorn).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from examples.gateway import app as gateway
from otel_gatewayz.testing import Gatewayz, in_process
from tests.e2e import withheld_app

AUTH = {"Authorization": "Bearer gw_payer"}


@pytest.fixture
def gatewayz_env(gatewayz_env: dict[str, str], request: pytest.FixtureRequest) -> dict[str, str]:
    return {**gatewayz_env, "RELEASE_SHA": "4322aec", "APP_ENV": getattr(request, "param", "staging")}


@pytest.fixture
def client(gatewayz: Gatewayz) -> Iterator[TestClient]:
    with gatewayz.client(gateway.app) as client:
        yield client


def _errors_counted(gatewayz: Gatewayz) -> dict[tuple[str, str, str], float]:
    """``gatewayz.errors`` by (route, error type, category)."""
    counted: dict[tuple[str, str, str], float] = {}
    for point in gatewayz.metrics("gatewayz.errors"):
        labels: dict[str, Any] = point.attributes
        key = (str(labels.get("http.route")), str(labels["error.type"]), str(labels["error.category"]))
        counted[key] = counted.get(key, 0) + point.value
    return counted


def test_capture_errors_records_scrubbed_arguments(gatewayz: Gatewayz, client: TestClient) -> None:
    response = client.post("/payments", headers=AUTH, json={"amount": -5})

    assert response.status_code == 500
    [event] = gatewayz.events()
    context = event["contexts"]["error_context"]
    assert context["operation"] == "process_payment"
    assert context["arguments"] == {"user_id": "'payer'", "amount": -5.0}
    assert event["tags"]["user_impact"] == "medium"
    assert event["fingerprint"] == ["ValidationError", "validation_error"]


@pytest.mark.parametrize("gatewayz_env", ["production"], indirect=True)
def test_http_4xx_are_not_events_and_production_drops_expected_4xx_but_never_a_500(
    gatewayz: Gatewayz, client: TestClient
) -> None:
    assert client.get("/users/me").status_code == 401
    assert client.get("/nope", headers=AUTH).status_code == 404
    assert client.post("/payments", headers=AUTH, json={"amount": "x"}).status_code == 422
    chat = {"model": "gpt-999", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", headers=AUTH, json=chat).status_code == 500  # never expected
    assert client.get("/v1/errors/provider", headers=AUTH).status_code == 500

    events = gatewayz.events()
    assert sorted(event["fingerprint"][0] for event in events) == ["ProviderAPIError", "ValidationError"]
    # Every error is counted, whether Sentry got it or not; a 401 is an answer, not an error.
    assert _errors_counted(gatewayz) == {
        ("unmatched", "HTTPException", "other"): 1,
        ("/payments", "RequestValidationError", "validation_error"): 1,
        ("/v1/chat/completions", "ValidationError", "validation_error"): 1,
        ("/v1/errors/{kind}", "ProviderAPIError", "provider_error"): 1,
    }


@pytest.mark.parametrize("gatewayz_env", ["production"], indirect=True)
def test_expected_errors_answered_5xx_are_one_event_and_one_count_in_production(gatewayz: Gatewayz) -> None:
    """A validation error is expected (withheld from Sentry in production) only while it is answered 4xx."""
    with gatewayz.client(withheld_app.app) as client:
        assert client.post("/escaped", params={"amount": -1}).status_code == 500  # recorded, then escaped
        assert client.post("/mapped", params={"amount": -1}).status_code == 503  # recorded, then HTTPException(503)
        assert client.post("/handled", json={"amount": "x"}).status_code == 500  # RequestValidationError, 500
        assert client.post("/rejected", params={"amount": -1}).status_code == 400  # answered 400: still expected

    events = gatewayz.events()
    assert len(events) == 3
    values = sorted(event["exception"]["values"][0]["value"] for event in events)
    assert values[1:] == ["Invalid amount for escaped", "Invalid amount for mapped"], values
    assert [event["fingerprint"][1] for event in events] == ["validation_error"] * 3
    by_route: dict[str, float] = {}
    for (route, _, _), value in _errors_counted(gatewayz).items():
        by_route[route] = by_route.get(route, 0) + value
    assert by_route == {"/escaped": 1, "/mapped": 1, "/handled": 1, "/rejected": 1}


def test_error_counter_labels_match_the_events(gatewayz: Gatewayz, client: TestClient) -> None:
    for kind in ("insufficient_credits", "provider", "provider", "validation", "unique", "rate_limit", "auth"):
        assert client.get(f"/v1/errors/{kind}", headers=AUTH).status_code == 500

    from_events: dict[tuple[str, str, str], int] = {}
    for event in gatewayz.events():
        key = (event["tags"]["error_type"], event["exception"]["values"][-1]["type"], event["tags"]["user_impact"])
        from_events[key] = from_events.get(key, 0) + 1
    from_metrics: dict[tuple[str, str, str], int] = {}
    for point in gatewayz.metrics("gatewayz.errors"):
        labels: dict[str, Any] = point.attributes
        assert labels["http.route"] == "/v1/errors/{kind}"
        from_metrics[(labels["error.category"], labels["error.type"], labels["user_impact"])] = int(point.value)
    assert from_metrics == from_events
    assert from_events[("provider_error", "ProviderAPIError", "low")] == 2


def test_a_huge_local_gives_a_bounded_scrubbed_event(gatewayz: Gatewayz) -> None:
    from bench import huge_app

    with gatewayz.client(huge_app.app) as client:
        assert client.get("/v1/errors/huge", params={"rows": 1_000_000}).status_code == 500

    [event] = gatewayz.events()
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    [frame] = [f for f in frames if f["function"] == "huge"]
    assert frame["in_app"] is True
    assert frame["context_line"].strip().startswith("raise RuntimeError")
    local_vars = frame["vars"]
    assert len(local_vars["blob"]["rows"]) <= 11 and local_vars["blob"]["rows"][-1] == "... 999990 more"
    assert len(local_vars["blob"]["note"]) <= 512
    # The key is scrubbed out of the locals (the source line holds only a fragment of it, not a key).
    assert "A1b2C3d4E5f6" not in json.dumps(local_vars) and "api_key" in local_vars
    assert len(json.dumps(local_vars)) < 4096
    library = [f for f in frames if not f["in_app"]]
    assert library and all("vars" not in f for f in library)  # locals of in-app frames only


@pytest.mark.parametrize("gatewayz_env", ["staging"], indirect=True)
@pytest.mark.parametrize("keep", ["true", "false"])
def test_unsampled_successes_send_no_transaction_and_errors_keep_theirs_unless_keeping_is_off(
    gatewayz_env: dict[str, str], keep: str
) -> None:
    """At rate 0 a success sends nothing; an error's trace is kept at its root's end (``GATEWAYZ_KEEP_TRACES``)."""
    env = {**gatewayz_env, "SENTRY_TRACES_SAMPLE_RATE": "0", "GATEWAYZ_KEEP_TRACES": keep}
    with in_process(env) as gatewayz, gatewayz.client(gateway.app) as client:
        assert client.get("/users/me", headers=AUTH).status_code == 200
        assert client.get("/v1/errors/provider", headers=AUTH).status_code == 500

        [event] = gatewayz.events()
        assert event["user"]["id"] == "payer"
        assert event["contexts"]["trace"]["trace_id"]
        transactions = gatewayz.transactions()
        if keep == "false":
            assert transactions == []  # pure head sampling
            return
        [transaction] = transactions  # the error's, kept at the root's end
        assert transaction["contexts"]["trace"]["trace_id"] == event["contexts"]["trace"]["trace_id"]
        assert transaction["contexts"]["trace"]["data"]["gatewayz.sampling.kept"] == "error"
        [envelope] = [e for e in gatewayz.envelopes() if any(item.type == "transaction" for item in e.items)]
        assert envelope.headers["trace"]["sampled"] == "false"  # the head's decision, for extrapolation
