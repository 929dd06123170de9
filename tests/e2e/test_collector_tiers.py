"""Issue 22, the fleet: the two-tier collector profile on loopback, every process real.

    client ─► gateway "edge" ──traceparent──► gateway "core" ─► stub provider
                   └───────── OTLP ─► front ◄── OTLP ─────┘        config.yaml + config.front.yaml
                                        │ load_balancing by trace id
                                ┌───────┴───────┐
                              back 1          back 2               config.yaml + config.back.yaml
                                │ tail_sampling  │ tail_sampling
                             store 1          store 2              an OtlpRecorder each

The edge relays chats to the core as its provider (its ``/v1/raw/chat/completions`` calls the
core's ``/v1/chat/completions``, the core's host allowed in ``GATEWAYZ_TRACE_PROPAGATION_TARGETS``),
so every trace crosses both gateways, and neither gateway sees the whole of it. The gateways
export everything they record (head rate 1.0, ``GATEWAYZ_KEEP_TRACES=false``): the backs decide.
Every FAIL_EVERY-th request fails at the core's provider (the core answers 502, the edge 500).

The client sends each request a ``sentry-trace`` header without a sampling flag (what a Sentry
browser SDK sends when it leaves the decision to the backend), so the edge still makes the head
decision, at its own rate, but on a trace id the test knows, kept or not. The backs'
``probabilistic`` policy hashes the trace id (FNV-1a over its salt and the id's 16 bytes), so which
successes it keeps is known exactly, not just about.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import RAW_CHAT_PATH, auth, eventually
from tests.servers.collector import (
    BACK_OVERLAY,
    COLLECTOR_CONFIG,
    FRONT_OVERLAY,
    CollectorServer,
)
from tests.servers.gateway import GatewayFactory
from tests.servers.otlp_recorder import OtlpRecorder
from tests.servers.ports import LOOPBACK

pytestmark = pytest.mark.e2e

REQUESTS = 80
FAIL_EVERY = 4  # 20 failed requests, 60 successes
SHARE_PERCENT = 25  # the backs' probabilistic share of the rest
# The tail sampler's FNV-1a salt when ``hash_salt`` is not set (tailsamplingprocessor, probabilistic.go).
HASH_SALT = b"default-hash-seed"
EDGE, CORE = "gateway-edge", "gateway-core"

Spans = list[dict[str, Any]]


def _fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def share_keeps(trace_id: str) -> bool:
    """The backs' ``probabilistic`` policy: hash(salt + trace id bytes) <= the share of 2^64 - 1."""
    threshold = (2**64 - 1) * SHARE_PERCENT // 100
    return _fnv1a_64(HASH_SALT + bytes.fromhex(trace_id)) <= threshold


def _by_trace(spans: Spans) -> dict[str, Spans]:
    traces: dict[str, Spans] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    return traces


def _http(spans: Spans, service: str, kind: str) -> dict[str, Any]:
    """The one HTTP span of ``kind`` that ``service`` recorded (not the GenAI span beside a client call)."""
    [span] = [
        s
        for s in spans
        if s["resource"]["service.name"] == service
        and s["kind"] == kind
        and "http.response.status_code" in s["attributes"]
    ]
    return span


@pytest.fixture
def stores() -> Iterator[tuple[OtlpRecorder, OtlpRecorder]]:
    with OtlpRecorder() as first, OtlpRecorder() as second:
        yield first, second


async def _traffic(base_url: str) -> list[tuple[str, httpx.Response]]:
    """Every request with its own trace id, the sampling decision left to the edge: (trace id, response)."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)  # a 500 may close its connection
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> tuple[str, httpx.Response]:
            trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
            model = "error-500" if i % FAIL_EVERY == 0 else "gpt-4o-mini"
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            headers = {**auth(), "sentry-trace": f"{trace_id}-{span_id}"}  # no flag: the edge decides
            response = await client.post(RAW_CHAT_PATH, json=body, headers=headers)
            return trace_id, response

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


# What each request leaves in its trace: per gateway its server span and its HTTP call upstream,
# and for an answer with usage the spend's GenAI span beside that call (a failed call has none).
FAILED_SHAPE = Counter({(EDGE, "SERVER"): 1, (EDGE, "CLIENT"): 1, (CORE, "SERVER"): 1, (CORE, "CLIENT"): 1})
SUCCESS_SHAPE = FAILED_SHAPE + Counter({(EDGE, "CLIENT"): 1, (CORE, "CLIENT"): 1})


def _check_complete(spans: Spans, trace_id: str, failed: bool) -> None:
    """Both gateways' spans, linked: edge server → edge HTTP call → core server → the core's provider call."""
    shape = Counter((s["resource"]["service.name"], s["kind"]) for s in spans)
    assert shape == (FAILED_SHAPE if failed else SUCCESS_SHAPE), f"{trace_id} is not whole: {shape}"
    ids = {s["span_id"] for s in spans}
    edge_server, edge_call = _http(spans, EDGE, "SERVER"), _http(spans, EDGE, "CLIENT")
    core_server, core_call = _http(spans, CORE, "SERVER"), _http(spans, CORE, "CLIENT")
    for span in spans:  # no hole: every parent is in the trace, but the client's own span
        assert span is edge_server or span["parent_span_id"] in ids, f"{trace_id}: {span['name']} lost its parent"
    assert edge_server["attributes"]["http.route"] == RAW_CHAT_PATH
    assert core_server["parent_span_id"] == edge_call["span_id"], "the core continued the edge's trace"
    code, status = (502, "ERROR") if failed else (200, "UNSET")
    assert (edge_server["status"]["code"], core_server["status"]["code"]) == (status, status)
    assert edge_call["attributes"]["http.response.status_code"] == code
    assert core_server["attributes"]["http.response.status_code"] == code
    assert core_call["attributes"]["http.response.status_code"] == (500 if failed else 200)


def test_two_gateways_through_a_front_and_two_tail_sampling_backs(
    collector_bin: Path,
    stores: tuple[OtlpRecorder, OtlpRecorder],
    gateway_factory: GatewayFactory,
    register_logs: Callable[[str, Callable[[], str]], None],
    tmp_path: Path,
) -> None:
    with ExitStack() as running:
        backs = []
        for i, store in enumerate(stores):
            back = CollectorServer(
                collector_bin,
                tmp_path / f"back-{i}",
                configs=(COLLECTOR_CONFIG, BACK_OVERLAY),
                traces_endpoint=store.endpoint,
                env={"COLLECTOR_TAIL_DECISION_WAIT": "2s", "COLLECTOR_TAIL_SAMPLE_PERCENT": str(SHARE_PERCENT)},
            )
            register_logs(f"back-{i}", back.logs)
            backs.append(running.enter_context(back))
        hostnames = ", ".join(f"{LOOPBACK}:{back.grpc_port}" for back in backs)
        front = CollectorServer(
            collector_bin,
            tmp_path / "front",
            configs=(COLLECTOR_CONFIG, FRONT_OVERLAY),
            env={"COLLECTOR_BACK_COLLECTORS": f"[{hostnames}]"},
        )
        register_logs("front", front.logs)
        running.enter_context(front)
        common = {
            "APP_ENV": "production",
            "OTEL_EXPORTER_OTLP_ENDPOINT": front.otlp_http_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            # Towards the collector tier: export every trace, and let the backs decide.
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "GATEWAYZ_KEEP_TRACES": "false",
        }
        core = gateway_factory(env={**common, "OTEL_SERVICE_NAME": CORE, "GATEWAY_PROVIDER_RETRIES": "0"})
        edge = gateway_factory(
            env={
                **common,
                "OTEL_SERVICE_NAME": EDGE,
                "PROVIDER_API_KEY": "gw_edge",  # the core authenticates the edge as a user
                "GATEWAYZ_TRACE_PROPAGATION_TARGETS": r"127\.0\.0\.1",
            },
            provider_url=core.base_url,
        )
        sent = asyncio.run(_traffic(edge.base_url))
        failed = {tid for tid, response in sent if response.status_code == 500}
        succeeded = {tid for tid, response in sent if response.status_code == 200}
        # Stopped in the data's direction, each flushing what it holds to the next: the gateways'
        # batches to the front, the front's to the backs.
        edge.stop()
        core.stop()
        front.stop()
        # The backs decide on their timer (decision_wait after a trace's first span)...
        eventually(
            lambda: failed <= {s["trace_id"] for store in stores for s in store.spans()},
            timeout=30,
            what="the backs to decide and export every error trace",
        )
        # ...and a back stopping decides what it still holds.
        for back in backs:
            back.stop()

    assert len(failed) == REQUESTS // FAIL_EVERY and len(failed) + len(succeeded) == REQUESTS
    kept = [_by_trace(store.spans()) for store in stores]
    assert all(kept), "both backs got traces: the front splits them"
    assert not set(kept[0]) & set(kept[1]), "a trace's spans all went to one back"
    everything = {**kept[0], **kept[1]}
    # Every error trace is complete, in exactly one back.
    assert failed <= everything.keys()
    for tid in failed:
        _check_complete(everything[tid], tid, failed=True)
    # Successes: exactly the probabilistic share's pick, each complete; not all, not none.
    expected = {tid for tid in succeeded if share_keeps(tid)}
    assert 0 < len(expected) < len(succeeded)  # 60 random ids at 25%: each bound fails with p < 1e-7
    assert everything.keys() - failed == expected
    for tid in expected:
        _check_complete(everything[tid], tid, failed=False)
