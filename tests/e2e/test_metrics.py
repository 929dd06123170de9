"""Issue 5 end to end: correct totals under many workers, bounded labels, errors by category."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, chat, eventually
from tests.servers.gateway import REPO_ROOT, StubProvider, base_env, venv_bin
from tests.servers.ports import free_port
from tests.servers.processes import ManagedProcess

pytestmark = pytest.mark.e2e
# The plain-httpx relay: these tests count requests across workers, the cheapest route serves.
CHAT = "/v1/raw/chat/completions"

COUNT = re.compile(r"^http_server_request_duration_seconds_count\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def _route_count(metrics: str, route: str) -> float:
    return sum(float(m["value"]) for m in COUNT.finditer(metrics) if f'http_route="{route}"' in m["labels"])


async def _fire(
    base_url: str,
    n: int,
    concurrency: int = 16,
    model: str = "gpt-4",
    distinct_models: bool = False,
    fresh_connections: bool = True,
) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0 if fresh_connections else None)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> int:
            async with semaphore:
                body = {"model": f"made-up-{i}" if distinct_models else model, "messages": []}
                response = await client.post(CHAT, json=body, headers=auth(f"u{i % 50}"))
                return response.status_code

        return await asyncio.gather(*(one(i) for i in range(n)))


def _metrics_when(url: str, route: str, count: int, timeout: float = 15.0) -> str:
    def probe() -> str | None:
        text = httpx.get(url).text
        return text if _route_count(text, route) == count else None

    return eventually(probe, timeout=timeout, what=f"{count} requests to {route} in {url}")


def _pids_serving(metrics: str) -> set[str]:
    return set(re.findall(r'target_info\{[^}]*service_instance_id="([^"]+)"', metrics))


def test_four_uvicorn_workers_report_exact_totals(gateway_factory, prometheus_factory):
    gateway = gateway_factory(env={"RELEASE_SHA": SHA, "APP_ENV": "staging"}, extra_args=["--workers", "4"])

    statuses = asyncio.run(_fire(gateway.base_url, 400))

    assert statuses == [200] * 400
    metrics = _metrics_when(gateway.metrics_url, CHAT, 400)
    assert len(_pids_serving(metrics)) >= 4  # every worker is instrumented, each its own instance id
    prometheus = prometheus_factory([gateway.metrics_target])
    expr = (
        f'sum(http_server_request_duration_seconds_count{{http_route="{CHAT}",'
        f'service_version="{SHA}",deployment_environment_name="staging",service_name="gatewayz-api"}})'
    )
    prometheus.wait_for_query(expr, lambda r: bool(r) and float(r[0]["value"][1]) == 400, timeout=30)
    logs = gateway.logs()
    assert "Traceback" not in logs
    assert logs.count("Sentry initialized successfully") == 0  # no DSN: no Sentry, and no error either


def _gunicorn_two_workers(bin_dir: Path, port: int) -> list[str]:
    """The example under ``opentelemetry-instrument gunicorn``, two uvicorn workers (forked, as gunicorn does)."""
    return [
        str(bin_dir / "opentelemetry-instrument"),
        str(bin_dir / "gunicorn"),
        "examples.gateway.app:app",
        *("-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5"),
    ]


def test_gunicorn_workers_and_a_restarted_worker_are_not_double_counted(tmp_path):
    bin_dir = venv_bin()
    provider = StubProvider(tmp_path / "provider").start()
    try:
        port, metrics_port = free_port(), free_port()
        env = {
            **base_env(),
            "GATEWAY_PROVIDER_URL": provider.url,
            "RELEASE_SHA": SHA,
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        }
        argv = _gunicorn_two_workers(bin_dir, port)
        process = ManagedProcess(argv, log_path=tmp_path / "gunicorn.log", env=env, cwd=REPO_ROOT)
        with process.start(ready_url=f"http://127.0.0.1:{port}/health", ready_timeout=60):
            base_url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
            assert asyncio.run(_fire(base_url, 100)) == [200] * 100
            eventually(
                lambda: _route_count(httpx.get(metrics_url).text, CHAT) == 100,
                what="100 requests from 2 gunicorn workers",
            )
            workers = _pids_serving(httpx.get(metrics_url).text)
            assert len(workers) >= 2
            # Kill one worker: gunicorn starts another; the dead one's counts stay, once.
            children_file = f"/proc/{process.pid}/task/{process.pid}/children"
            children = [int(p) for p in open(children_file).read().split()]  # noqa: SIM115
            os.kill(children[0], signal.SIGKILL)
            time.sleep(2)
            assert asyncio.run(_fire(base_url, 60)) == [200] * 60
            eventually(
                lambda: _route_count(httpx.get(metrics_url).text, CHAT) == 160,
                what="160 requests after a worker restart",
            )
            time.sleep(2.5)  # a few more snapshot rounds: still exactly 160
            assert _route_count(httpx.get(metrics_url).text, CHAT) == 160
        assert "Traceback" not in process.logs()
    finally:
        provider.stop()


def _answered_ok_count(metrics: str, route: str) -> float:
    return sum(
        float(m["value"])
        for m in COUNT.finditer(metrics)
        if f'http_route="{route}"' in m["labels"] and 'http_response_status_code="200"' in m["labels"]
    )


def _until_counted(counted: Callable[[], float], answered: int, what: str, timeout: float = 30) -> None:
    seen: list[float] = []

    def probe() -> bool:
        seen.append(counted())
        return seen[-1] == answered

    try:
        eventually(probe, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: /metrics counts {seen[-1]:g} of {answered} answered") from None


async def _kill_while_parked(base_url: str, pid: int, parked: int = 8) -> list[int | None]:
    """SIGKILL ``pid`` while ``parked`` requests wait on a slow provider: those it held are cut (None)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> int | None:
            try:
                body = {"model": "slow", "messages": []}
                return (await client.post(CHAT, json=body, headers=auth(f"s{i}"))).status_code
            except httpx.TransportError:
                return None  # the kill cut its connection: never answered

        waiting = [asyncio.create_task(one(i)) for i in range(parked)]
        await asyncio.sleep(0.5)  # all of them are waiting on the provider now
        os.kill(pid, signal.SIGKILL)
        return await asyncio.gather(*waiting)


def test_a_killed_worker_keeps_every_request_it_answered(tmp_path):
    """Issue 14 item 5: SIGKILL loses nothing counted since the worker's last snapshot (its journal has it).

    Snapshots every 20 s: the killed worker dies before its first one, so its share of the first
    burst is in its journal only (checked, so the test cannot pass without it). The kill lands
    between bursts (an instrumentation records a request's duration just after sending its
    answer, so a kill inside a busy worker may fall in that gap), while requests wait on the
    provider: those are cut, never answered, and never counted.
    """
    bin_dir = venv_bin()
    provider = StubProvider(tmp_path / "provider", env={"PROVIDER_SLOW_SECONDS": "4"}).start()
    try:
        port, metrics_port = free_port(), free_port()
        env = {
            **base_env(),
            "GATEWAY_PROVIDER_URL": provider.url,
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "GATEWAYZ_METRICS_WRITE_INTERVAL": "20",
            "GATEWAYZ_METRICS_DIR": str(tmp_path / "metrics"),
        }
        argv = _gunicorn_two_workers(bin_dir, port)
        process = ManagedProcess(argv, log_path=tmp_path / "gunicorn.log", env=env, cwd=REPO_ROOT)
        with process.start(ready_url=f"http://127.0.0.1:{port}/health", ready_timeout=60):
            base_url, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
            route = CHAT

            def counted() -> float:
                return _answered_ok_count(httpx.get(metrics_url).text, route)

            answered = asyncio.run(_fire(base_url, 1_500)).count(200)
            children = [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
            answered += asyncio.run(_kill_while_parked(base_url, children[0])).count(200)
            # The survivor's next snapshot brings its share; the dead worker's is its snapshot plus journal.
            _until_counted(counted, answered, "after the kill")
            snapshotted = sum(
                float(value)
                for path in (tmp_path / "metrics").glob("*.json")
                for family in json.loads(path.read_text())["families"]
                for name, labels, value in family["samples"]
                if name == "http_server_request_duration_seconds_count" and labels.get("http_route") == route
            )
            assert snapshotted < answered  # the rest is the dead worker's journal

            def replaced() -> bool:
                now = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
                return len(now) == 2 and str(children[0]) not in now

            eventually(replaced, timeout=30, what="gunicorn's replacement worker")
            answered += asyncio.run(_fire(base_url, 1_500)).count(200)  # the replacement worker serves too
            _until_counted(counted, answered, "after the replacement served", timeout=30)
            time.sleep(21)  # another snapshot round of every process: still exactly that, never counted twice
            assert counted() == answered
        assert "Traceback" not in process.logs()
    finally:
        provider.stop()


def test_made_up_model_names_leave_the_series_count_bounded(gateway_factory):
    # Pooled connections: a keep-alive longer than any stall of a loaded machine, so the server
    # never closes one just as the client reuses it.
    gateway = gateway_factory(env={"APP_ENV": "staging"}, extra_args=["--workers", "2", "--timeout-keep-alive", "120"])

    # 1,000 names, five times what both workers together let through (a real model keeping its
    # label after 10,000 made-up ones is tests/unit/test_model_labels.py).
    statuses = asyncio.run(
        _fire(gateway.base_url, 1_000, concurrency=32, distinct_models=True, fresh_connections=False)
    )

    assert statuses.count(200) == 1_000
    metrics = _metrics_when(gateway.metrics_url, CHAT, 1_000, timeout=30)
    models = set(re.findall(r'gen_ai_request_model="([^"]*)"', metrics))
    assert "other" in models
    assert len(models) <= 2 * 100 + 1  # each worker lets its first 100 names through, then "other"
    series = [line for line in metrics.splitlines() if line and not line.startswith("#")]
    assert len(series) < 5_000


def _histogram(metrics: str, name: str, **labels: str) -> tuple[float, float]:
    """(count, sum) of a histogram's series matching ``labels``."""
    count = total = 0.0
    for line in metrics.splitlines():
        match = re.match(rf"^{name}_(count|sum)\{{([^}}]*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match[2] for k, v in labels.items()):
            if match[1] == "count":
                count += float(match[3])
            else:
                total += float(match[3])
    return count, total


def test_provider_latency_time_to_first_chunk_and_failures(gateway_factory):
    gateway = gateway_factory(
        env={"APP_ENV": "staging", "GATEWAY_PROVIDER_TIMEOUT": "0.5"}, provider_env={"PROVIDER_CHUNK_DELAY": "0.3"}
    )
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/v1/raw/chat/completions",
        headers=auth(),
        json={"model": "gpt-4", "messages": [], "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        response.read()
    assert (
        httpx.post(
            f"{gateway.base_url}/v1/raw/chat/completions",
            headers=auth(),
            json={"model": "slow", "messages": []},
            timeout=30,
        ).status_code
        == 500
    )

    def ready() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        # "slow" was never served by the provider, so it takes no label slot: it is counted as "other".
        failed = _histogram(text, "gen_ai_client_operation_duration_seconds", gen_ai_request_model="other")
        return text if failed[0] else None

    metrics = eventually(ready, what="provider metrics")
    labels = {"gen_ai_provider_name": "openrouter", "gen_ai_request_model": "gpt-4", "gen_ai_operation_name": "chat"}
    ttfc_count, ttfc_sum = _histogram(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds", **labels)
    duration_count, duration_sum = _histogram(metrics, "gen_ai_client_operation_duration_seconds", **labels)
    assert (ttfc_count, duration_count) == (1, 1)
    # The duration covers the whole stream (5 chunks 0.3 s apart), the first chunk comes early.
    assert duration_sum - ttfc_sum >= 0.9
    failed_count, _ = _histogram(
        metrics, "gen_ai_client_operation_duration_seconds", gen_ai_request_model="other", error_type="ProviderAPIError"
    )
    assert failed_count == 1


def test_workers_leave_no_directory_behind_and_the_resource_tracker_is_not_instrumented(gateway_factory, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    gateway = gateway_factory(env={"APP_ENV": "staging", "TMPDIR": str(temp)}, extra_args=["--workers", "2"])
    [directory] = temp.glob("otel_gatewayz-metrics-*")
    for _ in range(20):
        assert chat(gateway.base_url).status_code == 200

    def snapshot_pids() -> set[int] | None:
        pids = {int(path.name.split("-", 1)[0]) for path in directory.glob("*.json")}
        return pids if len(pids) >= 3 else None  # the supervisor and two workers

    pids = eventually(snapshot_pids, timeout=20, what="snapshots of the supervisor and both workers")
    commands = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        for pid in pids
        if Path(f"/proc/{pid}/cmdline").exists()
    }
    assert not [pid for pid, command in commands.items() if b"resource_tracker" in command], commands
    # The supervisor and its two workers; a worker uvicorn replaced (its health check is 5 s, a loaded
    # machine can miss it) leaves its snapshot, whose totals are kept, but is no longer alive.
    assert len(commands) == 3, commands
    assert httpx.get(gateway.metrics_url).text.count("target_info{") == len(pids)

    gateway.stop()

    assert not directory.exists()


def test_old_conventions_take_no_label_a_client_chooses(gateway_factory):
    """``http/dup`` adds the old-convention series; random Host headers must not become series."""
    gateway = gateway_factory(env={"APP_ENV": "staging", "OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"})

    for i in range(60):
        response = httpx.get(f"{gateway.base_url}/users/me", headers={**auth(), "Host": f"h{i}.attacker.example"})
        assert response.status_code == 200

    def old_series() -> list[str] | None:
        text = httpx.get(gateway.metrics_url).text
        found = [line for line in text.splitlines() if line.startswith("http_server_duration_milliseconds_count")]
        return found if sum(float(line.rsplit(" ", 1)[1]) for line in found) >= 60 else None

    series = eventually(old_series, timeout=20, what="the old-convention duration series")
    text = httpx.get(gateway.metrics_url).text
    assert "attacker.example" not in text
    assert len(series) <= 3, series  # by method, scheme, status, flavor and port: one here
