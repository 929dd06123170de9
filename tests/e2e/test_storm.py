"""Issue 14 end to end: an error storm costs neither the request path nor Sentry quota.

Bounded locals are checked in-process: tests/unit/test_error_flow.py.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, eventually

pytestmark = pytest.mark.e2e

STORM = 1000


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])


def _errors_total(metrics_url: str) -> float:
    lines = httpx.get(metrics_url, timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("gatewayz_errors_total{"))


async def _storm(base_url: str, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        return await asyncio.gather(*(client.get("/v1/errors/provider", headers=auth()) for _ in range(n)))


def test_a_storm_of_one_fingerprint_sends_the_budget_and_reports_the_rest(bugsink, gateway_factory):
    """1,000 provider errors: all answered 500 with an id, all counted, 10 events + 1 summary in Sentry."""
    gateway = gateway_factory(env={"SENTRY_DSN": bugsink.dsn, "RELEASE_SHA": SHA}, stop_timeout=30)
    assert gateway.pid is not None
    warm_up = asyncio.run(_storm(gateway.base_url, 50))  # 50 errors of the same fingerprint first
    rss_before = _rss_kib(gateway.pid)

    responses = asyncio.run(_storm(gateway.base_url, STORM))

    assert [r.status_code for r in responses] == [500] * STORM
    ids = [r.json()["error"]["event_id"] for r in responses]
    assert all(isinstance(i, str) and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert eventually(lambda: _errors_total(gateway.metrics_url) == STORM + 50 or None, what="errors counted")
    grown_mib = (_rss_kib(gateway.pid) - rss_before) / 1024
    assert grown_mib < 30, f"RSS grew by {grown_mib:.1f} MiB over the storm"

    gateway.stop()  # the shutdown flush sends the suppressed-errors summary

    events = bugsink.wait_for_events(11)
    full = [e for e in events if e.get("fingerprint") == ["ProviderAPIError", "provider_error"]]
    summaries = [e for e in events if e.get("fingerprint") == ["otel_gatewayz", "suppressed-errors"]]
    assert len(full) == 10  # GATEWAYZ_ERROR_EVENT_BUDGET's default, 10 per 60 s
    answered = set(ids) | {r.json()["error"]["event_id"] for r in warm_up}
    [summary] = summaries
    # Every id a 500 body gave leads to an event: a full one, or the group's summary (the suppressed ones).
    assert answered == {e["event_id"].replace("-", "") for e in [*full, summary]}
    assert summary["tags"] and "gatewayz.suppressed.group" in str(summary["tags"])
    assert summary["extra"]["gatewayz_suppressed_total"] == STORM + 50 - 10
    assert summary["extra"]["gatewayz_suppressed"] == {"ProviderAPIError / provider_error": STORM + 50 - 10}
    assert len(events) == 11
