"""The ``gatewayz`` fixture users test with: what it records went through our pipeline, and tests never share it."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, format_trace_id

from otel_gatewayz import capture_message, set_request_context, set_user_context
from otel_gatewayz._context.state import current_state
from otel_gatewayz._sentry.sdk import STREAMS_SPANS
from otel_gatewayz._setup import runtime as runtime_module
from otel_gatewayz.testing import Gatewayz, in_process

pytest_plugins = ("pytester",)  # a pytest run of its own, to load the installed plugin as users do

STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"


class ProviderError(Exception):
    pass


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> dict[str, str]:
        set_user_context(user_id="u1", plan="pro")
        set_request_context(endpoint="/v1/chat/completions", method="POST", provider="openrouter", api_key=STRIPE_KEY)
        api_key = STRIPE_KEY  # noqa: F841 - a local the event's frame shows, scrubbed
        raise ProviderError(f"provider refused key {STRIPE_KEY}")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        set_user_context(user_id="u2")
        return {"ok": "yes"}

    return app


APP = _app()  # one app for the whole module, as a user's tests import theirs


def _request_an_error(gatewayz: Gatewayz) -> None:
    assert gatewayz.client(APP).post("/v1/chat/completions").status_code == 500


def test_an_error_is_recorded_grouped_enriched_and_scrubbed(gatewayz):
    _request_an_error(gatewayz)

    [event] = gatewayz.events()
    assert event["fingerprint"] == ["ProviderError", "provider_error"]
    assert event["tags"]["user_impact"] == "high" and event["user"]["id"] == "u1"
    assert event["exception"]["values"][-1]["mechanism"] == {"type": "otel_gatewayz", "handled": False}
    assert STRIPE_KEY not in json.dumps(event)
    [frame] = [f for f in event["exception"]["values"][-1]["stacktrace"]["frames"] if f["function"] == "chat"]
    assert frame["vars"]["api_key"] == "[REDACTED]"
    [server] = [span for span in gatewayz.spans() if span.kind is SpanKind.SERVER]
    assert server.attributes["user.id"] == "u1" and server.attributes["gatewayz.request.api_key"] == "[REDACTED]"
    assert all(STRIPE_KEY not in json.dumps(dict(span.attributes or {})) for span in gatewayz.spans())


def test_metric_points_carry_our_bounded_labels(gatewayz):
    _request_an_error(gatewayz)
    gatewayz.client(APP).get("/ok")

    [errors] = gatewayz.metrics("gatewayz.errors")
    assert errors.value == 1
    assert errors.attributes == {
        "error.category": "provider_error",
        "error.type": "ProviderError",
        "user_impact": "high",
        "http.route": "/v1/chat/completions",
    }
    durations = {point.attributes["http.route"]: point for point in gatewayz.metrics("http.server.request.duration")}
    assert set(durations) == {"/v1/chat/completions", "/ok"} and durations["/ok"].samples == 1


def test_traces_and_sessions_reach_the_recording_transport(gatewayz):
    _request_an_error(gatewayz)
    gatewayz.client(APP).get("/ok")

    gatewayz.client(APP).get("/health")  # never traced (the distro's excluded URLs)

    transactions = gatewayz.transactions()  # a DSN that is not sentry.io: transactions, on both majors
    assert sorted(t["transaction"] for t in transactions) == ["GET /ok", "POST /v1/chat/completions"]
    assert sorted(span.name for span in gatewayz.spans()) == ["GET /ok", "POST /v1/chat/completions"]
    assert all(STRIPE_KEY not in json.dumps(t) for t in transactions)
    [sessions] = gatewayz.sessions()
    [aggregate] = sessions["aggregates"]
    assert (aggregate.get("errored"), aggregate.get("exited")) == (1, 1)
    assert sessions["attrs"] == {"release": "gateway@0000000", "environment": "development"}


@pytest.fixture
def spans_env(gatewayz_env: dict[str, str]) -> dict[str, str]:
    return {**gatewayz_env, "GATEWAYZ_SENTRY_TRACES_VIA": "spans"}


def test_span_items_are_recorded_where_traces_go_as_spans(spans_env):
    with in_process(spans_env) as gatewayz:
        gatewayz.client(APP).get("/ok")
        items = gatewayz.sentry_spans()
        assert [item["name"] for item in items if item.get("is_segment")] == ["GET /ok"]
        assert gatewayz.transactions() == []


def test_messages_and_logs_are_recorded_scrubbed(gatewayz):
    assert capture_message("deploy finished", level="warning")
    logging.getLogger("myapp").warning("calling with %s", STRIPE_KEY)

    [event] = gatewayz.events()
    assert event["message"] == "deploy finished" and event["level"] == "warning"
    [record] = [r for r in gatewayz.logs() if "calling with" in str(r.log_record.body)]
    assert STRIPE_KEY not in str(record.log_record.body)


def test_the_fixture_keeps_traces_as_production_does(gatewayz_env):
    """The same assembly as the process's: no trace head-sampled, yet the errored request keeps its trace."""
    with in_process({**gatewayz_env, "SENTRY_TRACES_SAMPLE_RATE": "0"}) as gatewayz:
        _request_an_error(gatewayz)
        gatewayz.client(APP).get("/ok")

        [server] = gatewayz.spans()  # the request that went well is dropped at its root's end
        assert server.name == "POST /v1/chat/completions"
        assert server.attributes["gatewayz.sampling.kept"] == "error" and server.context.trace_flags.sampled
        [transaction] = gatewayz.transactions()  # Sentry gets the same kept trace
        assert transaction["contexts"]["trace"]["trace_id"] == format_trace_id(server.context.trace_id)
        [event] = gatewayz.events()
        assert event["contexts"]["trace"]["trace_id"] == format_trace_id(server.context.trace_id)


def _globals() -> dict[str, Any]:
    return {
        "runtime": runtime_module._runtime,
        "propagator": propagate.get_global_textmap(),
        "sentry client": sentry_sdk.get_global_scope().client,
        "root handlers": list(logging.getLogger().handlers),
        "request state": current_state(),
        "app handlers": dict(APP.exception_handlers),
        "app lifespan": APP.router.lifespan_context,
        "app attributes": {k for k in vars(APP) if k.startswith(("_otel", "_is_instrumented", "build_middleware"))},
        "app instrumented": getattr(APP, "_is_instrumented_by_opentelemetry", False),
        "threads": sorted(t.name for t in threading.enumerate() if "otel_gatewayz" in t.name),
    }


def test_every_global_the_fixture_swaps_is_put_back_and_its_threads_end():
    before = _globals()
    with in_process() as gatewayz:
        _request_an_error(gatewayz)
        gatewayz.client(APP).get("/ok")
        set_user_context(user_id="outside a request")  # a detached state in this test's context
        assert gatewayz.transactions() and gatewayz.events() and gatewayz.sessions()
        during = _globals()
        assert during["runtime"] is gatewayz.runtime and during["app instrumented"]
    assert _globals() == before
    assert during["runtime"] is not before["runtime"]


def test_two_distros_one_after_the_other_share_nothing():
    with in_process() as first:
        _request_an_error(first)
        assert len(first.events()) == 1
    with in_process() as second:
        assert second.events() == [] and second.spans() == [] and second.metrics("gatewayz.errors") == []
        second.client(APP).get("/ok")
        [server] = second.spans()
        assert server.attributes["user.id"] == "u2"
        assert second.events() == [] and second.metrics("gatewayz.errors") == []
    assert len(first.spans()) == 1  # the first still holds its own, untouched


def test_the_installed_plugin_isolates_tests_of_one_session(pytester):
    """Two tests of one pytest run, no conftest: the entry point provides the fixture, and each sees its own."""
    pytester.makepyfile(
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/boom")
        async def boom():
            raise RuntimeError("boom")

        def test_first(gatewayz):
            gatewayz.client(app).get("/boom")
            assert len(gatewayz.events()) == 1 and len(gatewayz.spans()) == 1

        def test_second(gatewayz):
            assert gatewayz.events() == [] and gatewayz.spans() == [] and gatewayz.metrics("gatewayz.errors") == []
            gatewayz.client(app).get("/boom")
            assert len(gatewayz.events()) == 1 and len(gatewayz.spans()) == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-W", "error")
    result.assert_outcomes(passed=2)


@pytest.mark.skipif(not STREAMS_SPANS, reason="sentry-sdk 3 only: its default route to sentry.io is span items")
def test_a_sentry_io_dsn_records_span_items_on_3x(gatewayz_env):
    with in_process({**gatewayz_env, "SENTRY_DSN": "https://public@o1.ingest.sentry.io/1"}) as gatewayz:
        gatewayz.client(APP).get("/ok")
        assert [item["name"] for item in gatewayz.sentry_spans() if item.get("is_segment")] == ["GET /ok"]


async def test_an_async_test_instruments_the_app_for_its_own_client(gatewayz):
    transport = httpx.ASGITransport(app=gatewayz.instrument(APP), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        assert (await client.post("/v1/chat/completions")).status_code == 500

    [event] = gatewayz.events()
    [server] = gatewayz.spans()
    assert event["contexts"]["trace"]["trace_id"] == format_trace_id(server.context.trace_id)
    assert event["user"]["id"] == "u1" and server.attributes["http.route"] == "/v1/chat/completions"
