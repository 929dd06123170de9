"""Issue 22 end to end: every error keeps its whole trace at the production sample rate (1%).

The example gateway runs under ``opentelemetry-instrument uvicorn`` at ``APP_ENV=production``
with OTLP export and Sentry (the recording endpoint, which keeps transactions). 10% of the
requests fail after their provider call (the stub provider answers 500). Every failed request's
trace must be complete in the OTLP export and in Sentry, the successes stay at the head rate,
and the sampling data stays the head decision's.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import RAW_CHAT_PATH, SHA, auth, eventually
from tests.servers.otlp_recorder import OtlpRecorder
from tests.servers.sentry_recorder import SentryRecorder

pytestmark = pytest.mark.e2e

REQUESTS = 300
FAIL_EVERY = 10  # 10% of the requests fail after their provider call
RATE = 0.01  # the production default of SENTRY_TRACES_SAMPLE_RATE
_COUNT = re.compile(r"^http_server_request_duration_seconds_count\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def head_sampled(trace_id: str) -> bool:
    """The OTel ratio sampler's decision for a trace that starts here (low 64 bits < rate * 2^64)."""
    return int(trace_id[16:], 16) < round(RATE * (1 << 64))


async def _traffic(base_url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)  # a 500 may close its connection
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> httpx.Response:
            model = "error-500" if i % FAIL_EVERY == 0 else "gpt-4o-mini"
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            return await client.post(RAW_CHAT_PATH, json=body, headers=auth())

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def _served(metrics_url: str) -> float:
    text = httpx.get(metrics_url, timeout=10).text
    return sum(float(m["value"]) for m in _COUNT.finditer(text) if RAW_CHAT_PATH in m["labels"])


def _traces(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    return by_trace


@pytest.mark.parametrize("workers", [1, 2])
def test_every_failed_request_keeps_its_whole_trace_at_the_production_rate(
    workers: int, gateway_factory: Any, otlp_recorder: OtlpRecorder, sentry_recorder: SentryRecorder
) -> None:
    gateway = gateway_factory(
        env={
            "APP_ENV": "production",
            "SENTRY_DSN": sentry_recorder.dsn,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "RELEASE_SHA": SHA,
        },
        extra_args=["--workers", str(workers)] if workers > 1 else [],
        stop_timeout=30,
    )
    responses = asyncio.run(_traffic(gateway.base_url))
    failed = [r for r in responses if r.status_code >= 500]
    assert len(failed) == REQUESTS // FAIL_EVERY
    assert all(r.status_code == 200 for r in responses if r not in failed)
    # Metrics are unaffected: every request is counted, whatever became of its trace.
    assert eventually(lambda: _served(gateway.metrics_url) == REQUESTS or None, what="every request counted")
    gateway.stop()  # flushes the batch processors and the Sentry client

    traces = _traces(otlp_recorder.spans())
    roots = {tid: [s for s in spans if s["kind"] == "SERVER"] for tid, spans in traces.items()}
    assert all(len(server) == 1 for server in roots.values()), "one server span per kept trace"
    errored = {tid for tid, [server] in roots.items() if server["status"]["code"] == "ERROR"}
    assert len(errored) == len(failed), "every failed request's trace is in the OTLP export"
    for tid in errored:
        [server] = roots[tid]
        clients = [s for s in traces[tid] if s["kind"] == "CLIENT"]
        assert [c["parent_span_id"] for c in clients] == [server["span_id"]], "the provider call is in the trace"
        assert clients[0]["attributes"]["http.response.status_code"] == 500
        assert clients[0]["attributes"]["http.request.method"] == "POST"  # set when the span started
        assert server["attributes"]["http.route"] == RAW_CHAT_PATH
        expected = "head" if head_sampled(tid) else "error"
        assert server["attributes"]["gatewayz.sampling.kept"] == expected
        assert "gatewayz.sampling.partial" not in server["attributes"]
        [exception] = [e for e in server["events"] if e["name"] == "exception"]
        assert "ProviderAPIError: openrouter returned 500" in exception["attributes"]["exception.stacktrace"]
    successes = set(roots) - errored
    # Successes stay at the head rate: exactly those the ratio sampled, each marked so.
    assert all(head_sampled(tid) for tid in successes)
    assert all(roots[tid][0]["attributes"]["gatewayz.sampling.kept"] == "head" for tid in successes)
    assert len(successes) <= 15  # 270 at 1%: 2.7 expected; more than 15 has probability < 1e-7

    # Every Sentry error event's trace is in Sentry, with the head decision's sampling data.
    events = [e for e in sentry_recorder.events() if "exception" in e]  # not storm control's summary
    assert len(events) >= 10, "storm control sends the group's first errors in full"
    transactions = {t["contexts"]["trace"]["trace_id"]: t for t in sentry_recorder.transactions()}
    assert set(transactions) == set(traces), "Sentry and OTLP keep the same traces"
    for event in events:
        tid = event["contexts"]["trace"]["trace_id"]
        transaction = transactions[tid]
        assert transaction["contexts"]["trace"]["status"] == "internal_error"
        assert [s["op"] for s in transaction["spans"]] == ["http.client"]
    # Storm control: 10 full events per worker, the other errors answered with their group's summary
    # event's id, which lists their kept traces; every id a 500 body gave leads to an event in Sentry.
    summaries = [e for e in sentry_recorder.events() if "exception" not in e]
    assert len(summaries) == workers  # one group, one summary per worker process
    answered = {r.json()["error"]["event_id"] for r in failed}
    assert answered == {e["event_id"] for e in [*events, *summaries]}
    assert sum(s["extra"]["gatewayz_suppressed_total"] for s in summaries) == len(failed) - len(events)
    listed = {tid for s in summaries for tid in s["extra"]["gatewayz_kept_trace_ids"]}
    assert listed == errored - {e["contexts"]["trace"]["trace_id"] for e in events}
    for envelope in sentry_recorder.envelopes():
        if not envelope.of_type("transaction"):
            continue
        dsc = envelope.headers["trace"]
        assert dsc["sample_rate"] == str(RATE)
        assert dsc["sampled"] == ("true" if head_sampled(dsc["trace_id"]) else "false")
        assert (float(dsc["sample_rand"]) < RATE) == head_sampled(dsc["trace_id"])
