"""Issue 7 end to end: telemetry faults never reach the request (draft)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import SHA, auth, eventually

pytestmark = pytest.mark.e2e

CLIENT_TIMEOUT = 5.0
BASE = {"RELEASE_SHA": SHA, "SENTRY_TRACES_SAMPLE_RATE": "1.0", "GATEWAYZ_SHUTDOWN_TIMEOUT": "1"}
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def dropped(metrics_url: str, signal: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=CLIENT_TIMEOUT).text):
        for sample in family.samples:
            if sample.name == "gatewayz_telemetry_dropped_total" and sample.labels.get("signal") == signal:
                reason = sample.labels.get("reason", "")
                found[reason] = found.get(reason, 0.0) + sample.value
    return found


async def _traffic(base_url: str, n: int, concurrency: int = 8) -> tuple[list[int], list[int], list[dict]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT, limits=limits) as client:
        async def one_chat() -> int:
            async with sem:
                return (await client.post("/v1/chat/completions", json=CHAT, headers=auth())).status_code

        async def one_error() -> tuple[int, dict]:
            async with sem:
                r = await client.get("/v1/errors/provider", headers=auth())
                return r.status_code, r.json()

        chats = await asyncio.gather(*(one_chat() for _ in range(n)))
        errors = await asyncio.gather(*(one_error() for _ in range(n)))
    return list(chats), [s for s, _ in errors], [b for _, b in errors]


def traffic(base_url: str, n: int) -> tuple[list[int], list[int], list[dict]]:
    return asyncio.run(_traffic(base_url, n))


@pytest.mark.parametrize("mode", ["refused", "hang", "error_500", "rate_limited"])
def test_sentry_faults(mode, gateway_factory, sentry_recorder, refused_dsn):
    dsn = refused_dsn if mode == "refused" else sentry_recorder.dsn
    if mode != "refused":
        sentry_recorder.set_mode(mode)
    gateway = gateway_factory(env={**BASE, "SENTRY_DSN": dsn})
    t0 = time.monotonic()
    chats, errors, bodies = traffic(gateway.base_url, 30)
    print("traffic", time.monotonic() - t0)
    assert chats == [200] * 30
    assert errors == [500] * 30
    rss = [rss_kib(gateway.pid)]
    for _ in range(3):
        t0 = time.monotonic()
        traffic(gateway.base_url, 100)
        print("window", time.monotonic() - t0)
        rss.append(rss_kib(gateway.pid))
    print("rss", rss)
    print(dropped(gateway.metrics_url, "sentry"))
    print(len(sentry_recorder.envelopes()))
    for line in gateway.logs().splitlines():
        if not line.startswith((" ", "Traceback", "INFO:     127.0.0.1", "ERROR:    Exception in ASGI", "examples.gateway.errors")) and line.strip():
            print("LOG", line)


@pytest.mark.parametrize("mode", ["refused", "hang", "error_500"])
def test_collector_faults(mode, gateway_factory, otlp_recorder):
    from tests.servers.ports import RefusedPort
    with RefusedPort() as port:
        endpoint = f"http://127.0.0.1:{port.port}" if mode == "refused" else otlp_recorder.endpoint
        if mode != "refused":
            otlp_recorder.set_mode(mode)
        gateway = gateway_factory(env={**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
                                       "OTEL_EXPORTER_OTLP_TIMEOUT": "2"})
        t0 = time.monotonic()
        chats, errors, bodies = traffic(gateway.base_url, 30)
        print("traffic", time.monotonic() - t0)
        assert chats == [200] * 30
        assert errors == [500] * 30
        time.sleep(6)
        print(dropped(gateway.metrics_url, "spans"))
        print(len(otlp_recorder.requests()))
        gateway.stop()
        for line in gateway.logs().splitlines():
            if not line.startswith((" ", "Traceback", "INFO:     127.0.0.1", "ERROR:    Exception in ASGI", "examples.gateway.errors")) and line.strip():
                print("LOG", line)
