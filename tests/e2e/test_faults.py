"""Issue 7 end to end: telemetry faults never reach the request, and nothing is lost unseen.

Every test runs the app the way users run it (``opentelemetry-instrument uvicorn`` or
``gunicorn``) against real loopback servers that misbehave on purpose: a Sentry endpoint that
refuses, hangs, answers 500 or rate-limits; a collector that refuses, hangs or answers 500.
Requests must keep their status codes and bodies, with a client timeout that a blocked event
loop would trip; the losses must show in ``gatewayz_telemetry_dropped_total`` and in one log
line per reason. Latency is compared in the benchmark (bench/), never here.
"""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import RAW_CHAT_PATH, SHA, auth, eventually
from tests.servers.gateway import REPO_ROOT, base_env, venv_bin
from tests.servers.ports import LOOPBACK, RefusedPort, free_port
from tests.servers.processes import ManagedProcess

pytestmark = pytest.mark.e2e

# A blocked event loop (an exporter waiting on a dead endpoint) would hold requests far longer.
CLIENT_TIMEOUT = 5.0
# Shutdown waits are short here so that fault tests stop quickly; the shutdown tests set their own.
BASE = {"RELEASE_SHA": SHA, "SENTRY_TRACES_SAMPLE_RATE": "1.0", "GATEWAYZ_SHUTDOWN_TIMEOUT": "1"}
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
MIB = 1024


# -- helpers -------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` (the gateway: opentelemetry-instrument execs uvicorn in place)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def dropped(metrics_url: str, signal_name: str) -> dict[str, float]:
    """``gatewayz_telemetry_dropped_total`` for one signal, by reason."""
    found: Counter[str] = Counter()
    text = httpx.get(metrics_url, timeout=CLIENT_TIMEOUT).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gatewayz_telemetry_dropped_total" and sample.labels.get("signal") == signal_name:
                found[sample.labels.get("reason", "")] += sample.value
    return dict(found)


def drops_with(metrics_url: str, signal_name: str, reasons: set[str], timeout: float = 15.0) -> dict[str, float]:
    """Wait until every one of ``reasons`` has been counted for ``signal_name``."""

    def probe() -> dict[str, float] | None:
        found = dropped(metrics_url, signal_name)
        return found if reasons <= set(found) else None

    return eventually(probe, timeout=timeout, what=f"{signal_name} drops {sorted(reasons)}")


def lines_with(logs: str, needle: str) -> list[str]:
    return [line for line in logs.splitlines() if needle in line]


def failure_lines(logs: str) -> Counter[str]:
    """Our "<what> failed" log lines, counted."""
    return Counter(line for line in logs.splitlines() if re.search(r"otel_gatewayz: .*failed", line))


async def _requests(base_url: str, chats: int, errors: int, concurrency: int = 8) -> tuple[list[int], list[Any]]:
    # No keep-alive: Starlette closes the connection after re-raising a 500 anyway.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT, limits=limits) as client:

        async def chat() -> int:
            async with gate:
                return (await client.post("/v1/chat/completions", json=CHAT, headers=auth())).status_code

        async def error() -> tuple[int, Any]:
            async with gate:
                response = await client.get("/v1/errors/provider", headers=auth())
                return response.status_code, response.json()

        chat_statuses = await asyncio.gather(*(chat() for _ in range(chats)))
        error_results = await asyncio.gather(*(error() for _ in range(errors)))
    return list(chat_statuses), list(error_results)


def requests_as_healthy(base_url: str, n: int = 30) -> None:
    """``n`` chats and ``n`` unhandled errors answer exactly as in a healthy run, each within the timeout."""
    chats, errors = asyncio.run(_requests(base_url, n, n))
    assert chats == [200] * n
    assert [status for status, _ in errors] == [500] * n
    for _, body in errors:
        assert body["error"]["type"] == "internal_error"
        assert body["error"]["message"] == "Internal Server Error"


def error_window(base_url: str, n: int) -> None:
    _, errors = asyncio.run(_requests(base_url, 0, n))
    assert [status for status, _ in errors] == [500] * n


def pythonpath(*extra: Path) -> str:
    """``extra`` ahead of whatever PYTHONPATH the launched servers already get."""
    parts = [str(path) for path in extra]
    inherited = base_env().get("PYTHONPATH")
    return os.pathsep.join([*parts, inherited] if inherited else parts)


def app_module(directory: Path, name: str, source: str) -> Path:
    """A tiny app module next to the example gateway, importable as ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return directory


# -- 1. Sentry down, hanging, failing, rate limiting -----------------------------------------------

# What sentry-sdk 2.x does in each mode, and so which drop reasons must be counted:
#   refused       every envelope fails to connect: "network", one per envelope.
#   hang          the SDK's single worker blocks on its first request (urllib3 timeout 30 s, longer
#                 than this test); its queue (100 envelopes) fills behind it. Transactions yield
#                 at half of it ("transaction_backlog", ours: error events are never crowded out);
#                 error events wait in our own bounded event queue (256), paced into the SDK's, and
#                 only past it are dropped ("error_queue_full"). Requests never wait.
#   error_500     every envelope is sent and refused: "status_500".
#   rate_limited  the first answer is 429 with Retry-After and X-Sentry-Rate-Limits: "status_429"
#                 once, then the SDK sends nothing for 60 s and drops locally: "self_rate_limits".
SENTRY_FAULTS = {
    "refused": {"network"},
    "hang": {"transaction_backlog"},
    "error_500": {"status_500"},
    "rate_limited": {"status_429", "self_rate_limits"},
}


@pytest.mark.parametrize("mode", sorted(SENTRY_FAULTS))
def test_sentry_faults_leave_requests_alone_and_are_counted(mode, sentry_recorder, refused_dsn, gateway_factory):
    """Sentry refusing, hanging, failing or rate limiting: same answers, bounded memory, drops counted, one line."""
    if mode != "refused":
        sentry_recorder.set_mode(mode)
    gateway = gateway_factory(env={**BASE, "SENTRY_DSN": refused_dsn if mode == "refused" else sentry_recorder.dsn})

    requests_as_healthy(gateway.base_url)

    # Memory stays bounded: whatever the fault, a dropped event is not kept. Two windows of
    # error requests (each event carries frames, locals and breadcrumbs: tens of KiB) after a
    # warm-up; keeping every event would grow the second window by several MiB, the bounded
    # queues by nothing. Allocator noise measured here is under 1 MiB.
    error_window(gateway.base_url, 100)
    first = rss_kib(gateway.pid)
    error_window(gateway.base_url, 100)
    second = rss_kib(gateway.pid)
    assert second - first < 4 * MIB, f"RSS grew {second - first} KiB over 100 dropped events"

    drops_with(gateway.metrics_url, "sentry", SENTRY_FAULTS[mode])
    # Logged once per reason, not per event (a reason is counted before it is logged).
    reasons = Counter(re.findall(r"Sentry dropped an envelope \((\w+)\)", gateway.logs()))
    drops = dropped(gateway.metrics_url, "sentry")
    assert sum(drops.values()) >= 100  # of 230 error events and 260 transactions
    assert SENTRY_FAULTS[mode] <= set(reasons) <= set(drops), (reasons, drops)
    assert set(reasons.values()) == {1}, reasons
    if mode == "rate_limited":
        # The SDK honoured the 429 instead of hammering Sentry.
        assert len(sentry_recorder.envelopes()) <= 3


# -- 2. Collector down, hanging, failing ----------------------------------------------------------

# Every failed batch is counted by reason (the spans the exporter had in hand), every span the
# batch processor could not queue as "queue_full"; the OTLP exporter's own per-batch and
# per-retry lines are folded into our one line per reason.
COLLECTOR_FAULTS = {
    "refused": {"unreachable"},
    "hang": {"queue_full", "timeout"},
    "error_500": {"http_500"},
}
# A chat is a server span, a client span and the GenAI span of its answer (the main venv has no
# GenAI instrumentation: ours, with its tokens and cost); an error is a server span.
SPANS = 30 * 3 + 30


@pytest.mark.parametrize("mode", sorted(COLLECTOR_FAULTS))
def test_collector_faults_leave_requests_alone_and_are_counted(mode, otlp_recorder, gateway_factory):
    """Collector refusing, hanging or failing: same answers, every lost span counted by reason, one line each."""
    env = {**BASE, "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}
    if mode == "hang":
        # A small queue, so that spans pile up behind the hung export and overflow it.
        env |= {"OTEL_BSP_MAX_QUEUE_SIZE": "16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8"}
    with RefusedPort() as refused:
        if mode == "refused":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{LOOPBACK}:{refused.port}"
        else:
            otlp_recorder.set_mode(mode)
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_recorder.endpoint
        gateway = gateway_factory(env=env)

        requests_as_healthy(gateway.base_url)

        drops_with(gateway.metrics_url, "spans", COLLECTOR_FAULTS[mode])

        # Every span of the run is accounted for, once.
        def all_counted() -> dict[str, float] | None:
            found = dropped(gateway.metrics_url, "spans")
            return found if sum(found.values()) >= SPANS else None

        drops = eventually(all_counted, timeout=20, what=f"all {SPANS} spans counted as dropped")
        logs = gateway.logs()
    assert sum(drops.values()) == SPANS
    assert set(drops) == COLLECTOR_FAULTS[mode]
    assert Counter(re.findall(r"spans dropped \((\w+)", logs)) == dict.fromkeys(COLLECTOR_FAULTS[mode], 1)
    upstream_lines = [line for line in logs.splitlines() if "otel_gatewayz:" not in line]
    for upstream in ("Failed to export spans batch", "Transient error", "Queue full, dropping Span"):
        assert not [line for line in upstream_lines if upstream in line], upstream


# -- 3. Graceful shutdown --------------------------------------------------------------------------


def test_sigterm_right_after_50_errors_delivers_all_50(bugsink, gateway_factory):
    """50 errors, SIGTERM at once: the bounded flush at shutdown gets every event to Bugsink."""
    gateway = gateway_factory(
        env={"SENTRY_DSN": bugsink.dsn, "RELEASE_SHA": SHA, "GATEWAYZ_ERROR_EVENT_BUDGET": "unlimited"},
        stop_timeout=30,
    )
    error_window(gateway.base_url, 50)

    started = time.monotonic()
    gateway.stop()  # SIGTERM at once: events are still queued in the SDK
    elapsed = time.monotonic() - started

    assert elapsed < 5 + 10  # GATEWAYZ_SHUTDOWN_TIMEOUT's default, plus start-up slack; never SIGKILLed
    events = bugsink.wait_for_events(50, timeout=5)  # sent before the process exited
    assert len(events) == 50


def test_shutdown_is_bounded_when_sentry_and_the_collector_hang(sentry_recorder, otlp_recorder, gateway_factory):
    """GATEWAYZ_SHUTDOWN_TIMEOUT bounds the exit even when nothing pending can ever be delivered."""
    timeout = 3
    sentry_recorder.set_mode("hang")
    otlp_recorder.set_mode("hang")
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": sentry_recorder.dsn,
            "RELEASE_SHA": SHA,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "GATEWAYZ_SHUTDOWN_TIMEOUT": str(timeout),
        },
        stop_timeout=60,
    )
    requests_as_healthy(gateway.base_url, 20)

    started = time.monotonic()
    gateway.stop()
    elapsed = time.monotonic() - started

    # A bound on exit, not a latency: spans and metrics get the timeout, then Sentry as long again
    # (the SDK alone would wait 30 s per span processor and 10 s per OTLP export).
    assert elapsed < 2 * timeout + 8, f"shutdown took {elapsed:.1f}s"


# -- 4. Fork safety --------------------------------------------------------------------------------

# Nothing in a default Sentry event tells workers apart (server_name is the host, contexts are
# runtime/trace/request, extra is sys.argv), nor in a span (the resource is built once, before
# the fork with --preload). The app puts its pid in the request context, which reaches the
# Sentry event, the Sentry transaction and the OTel spans.
FORK_APP = """
    import os
    import time

    from otel_gatewayz import set_request_context
    from examples.gateway.app import app


    def _mark(endpoint: str) -> None:
        set_request_context(endpoint=endpoint, method="GET", worker_pid=os.getpid())
        time.sleep(0.05)  # holds this worker's loop, so that concurrent connections reach the other


    @app.get("/whoami")
    async def whoami() -> dict[str, int]:
        _mark("/whoami")
        return {"pid": os.getpid()}


    @app.get("/whoami/error")
    async def whoami_error() -> None:
        _mark("/whoami/error")
        raise RuntimeError("error from a worker")
"""


def _start_gunicorn(tmp_path: Path, env: dict[str, str]) -> tuple[ManagedProcess, str]:
    port = free_port()
    bin_dir = venv_bin()
    argv = [
        bin_dir / "opentelemetry-instrument",
        bin_dir / "gunicorn",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "--preload",
        "-w",
        "2",
        "-b",
        f"{LOOPBACK}:{port}",
        "--no-control-socket",
        "--graceful-timeout",
        "10",
        "ogz_fork_app:app",
    ]
    process = ManagedProcess(
        argv, log_path=tmp_path / "gunicorn.log", env={**base_env(), **env}, cwd=REPO_ROOT, stop_timeout=20
    )
    base_url = f"http://{LOOPBACK}:{port}"
    return process.start(ready_url=f"{base_url}/health", ready_timeout=60), base_url


@pytest.mark.parametrize("server", ["gunicorn --preload", "uvicorn --workers"])
def test_every_worker_serves_and_sends(server, tmp_path, sentry_recorder, otlp_recorder, gateway_factory):
    """Pre-fork (gunicorn --preload) and spawned (uvicorn --workers) workers: no deadlock, each one sends."""
    env = {
        **BASE,
        "SENTRY_DSN": sentry_recorder.dsn,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PYTHONPATH": pythonpath(app_module(tmp_path / "app", "ogz_fork_app", FORK_APP)),
    }
    if server.startswith("gunicorn"):
        env |= {"OTEL_EXPORTER_PROMETHEUS_HOST": LOOPBACK, "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port())}
        process, base_url = _start_gunicorn(tmp_path, env)
        logs = process.logs
    else:
        gateway = gateway_factory(
            env=env, app="ogz_fork_app:app", extra_args=["--workers", "2"], provider_url=f"http://{LOOPBACK}:9"
        )
        base_url, logs = gateway.base_url, gateway.logs
    try:

        async def fire(path: str, n: int) -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT, limits=limits) as client:
                return await asyncio.gather(*(client.get(path) for _ in range(n)))

        served = asyncio.run(fire("/whoami", 40))
        assert [r.status_code for r in served] == [200] * 40  # no deadlock: each within the timeout
        workers = {r.json()["pid"] for r in served}
        assert len(workers) == 2, f"one worker took every request: {logs()[-3000:]}"
        assert [r.status_code for r in asyncio.run(fire("/whoami/error", 20))] == [500] * 20

        def sent_by_every_worker(found: set[Any]) -> bool:
            return found >= workers

        # Each worker has its own live Sentry worker thread, transaction thread and span exporter.
        sentry_recorder.wait_for(
            lambda r: sent_by_every_worker(
                {e.get("contexts", {}).get("request", {}).get("worker_pid") for e in r.events()}
            )
        )
        sentry_recorder.wait_for(
            lambda r: sent_by_every_worker(
                {t["contexts"]["trace"]["data"].get("gatewayz.request.worker_pid") for t in r.transactions()}
            )
        )
        otlp_recorder.wait_for(
            lambda r: sent_by_every_worker({s["attributes"].get("gatewayz.request.worker_pid") for s in r.spans()})
        )
        # The port the others found taken is a sibling's: no warning that /metrics is not served.
        assert "no worker of this server serves /metrics" not in logs()
        # Each worker is its own service instance, though --preload built the resource before the fork.
        instance_of = {
            (s["attributes"]["gatewayz.request.worker_pid"], s["resource"].get("service.instance.id"))
            for s in otlp_recorder.spans()
            if s["attributes"].get("gatewayz.request.worker_pid")
        }
        assert len(instance_of) == len({instance for _, instance in instance_of}) == 2, instance_of
    finally:
        if server.startswith("gunicorn"):
            process.stop()


# -- 5. Our own code failing -----------------------------------------------------------------------

# No GATEWAYZ_FINGERPRINT_RULES value can make grouping raise: a rule is a substring of the
# exception type name, checked with ``in``, and a malformed value is refused at start-up (the
# spec's rules apply). What can make our code fail is what the app hands it: values whose str()
# raises, breadcrumb data JSON cannot encode, exceptions whose message cannot be read.
BAD_INPUT_APP = """
    from otel_gatewayz import add_breadcrumb, capture_exception, set_request_context, set_user_context
    from examples.gateway.app import app


    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("str() of this object fails")

        __repr__ = __str__


    class UnreadableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str() of this exception fails")


    @app.get("/bad/user")
    async def bad_user() -> None:
        set_user_context(user_id=Unprintable(), email="bad@example.com")
        raise ValueError("error after a bad user context")


    @app.get("/bad/breadcrumb")
    async def bad_breadcrumb() -> None:
        set_request_context(endpoint="/bad/breadcrumb", method="GET")
        add_breadcrumb("odd data", category="db", data={"obj": Unprintable(), "plain": object()})
        raise ValueError("error after a bad breadcrumb")


    @app.get("/bad/ok")
    async def bad_ok() -> dict[str, bool]:
        set_user_context(user_id=Unprintable())
        add_breadcrumb("odd data", category="db", data={"obj": Unprintable()})
        return {"ok": True}


    @app.get("/bad/unreadable")
    async def bad_unreadable() -> None:
        raise UnreadableError("never shown")


    @app.get("/bad/captured")
    async def bad_captured() -> dict[str, str | None]:
        return {"event_id": capture_exception(UnreadableError("never shown"))}
"""


def _bad_input_gateway(tmp_path: Path, gateway_factory, sentry_recorder, **env: str):
    module_dir = app_module(tmp_path / "app", "ogz_bad_app", BAD_INPUT_APP)
    return gateway_factory(
        env={**BASE, "SENTRY_DSN": sentry_recorder.dsn, "PYTHONPATH": pythonpath(module_dir), **env},
        app="ogz_bad_app:app",
        provider_url=f"http://{LOOPBACK}:9",
    )


def _exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in event.get("exception", {}).get("values", [])]


def test_bad_input_to_our_api_is_contained_and_the_event_still_sent(tmp_path, sentry_recorder, gateway_factory):
    """Unprintable user ids, breadcrumb data JSON cannot encode, a malformed rule: served and sent.

    Odd values are coerced when they are given (the safe repr of what ``str()`` cannot print),
    so nothing fails later; the malformed rule is reported once at start-up.
    """
    gateway = _bad_input_gateway(tmp_path, gateway_factory, sentry_recorder, GATEWAYZ_FINGERPRINT_RULES="not a rule")

    def get(path: str) -> httpx.Response:
        return httpx.get(gateway.base_url + path, timeout=CLIENT_TIMEOUT)

    for _ in range(2):
        for path in ("/bad/user", "/bad/breadcrumb", "/bad/unreadable"):
            response = get(path)
            assert response.status_code == 500
            assert response.json()["error"]["type"] == "internal_error"
        assert get("/bad/ok").json() == {"ok": True}

    def sent(events: list[dict[str, Any]], exc_type: str, n: int) -> list[dict[str, Any]] | None:
        found = [
            e for e in events if _exception_types(e)[-1:] == [exc_type] and e.get("fingerprint", [None])[0] == exc_type
        ]
        return found if len(found) >= n else None

    # The errors after odd set_user_context / add_breadcrumb input are sent, grouped by the spec's
    # rules (the malformed extra rule is ignored), with the odd values as text.
    sentry_recorder.wait_for(lambda r: sent(r.events(), "ValueError", 4))
    events = sentry_recorder.events()
    after_user = [e for e in events if e.get("fingerprint") == ["ValueError", "error after a bad user context"]]
    after_crumb = [e for e in events if e.get("fingerprint") == ["ValueError", "error after a bad breadcrumb"]]
    assert len(after_user) == len(after_crumb) == 2
    assert isinstance(after_user[0]["user"]["id"], str)
    [crumb] = after_crumb[0]["breadcrumbs"]["values"]
    assert crumb["message"] == "odd data" and set(crumb["data"]) == {"obj", "plain"}
    assert all(isinstance(value, str) for value in crumb["data"].values())
    # An unhandled exception whose message cannot be read: OpenTelemetry's record_exception
    # raises on str(exc) in the FastAPI instrumentation, so the request ends with that
    # RuntimeError (chained to ours); it is served as a 500 and sent.
    assert [e for e in events if "UnreadableError" in _exception_types(e)]

    logs = gateway.logs()
    assert len(lines_with(logs, "GATEWAYZ_FINGERPRINT_RULES")) == 1
    assert not lines_with(logs, "otel_gatewayz: set_user_context failed")
    assert not lines_with(logs, "otel_gatewayz: add_breadcrumb failed")


def test_a_captured_exception_whose_message_cannot_be_read_is_still_sent(tmp_path, sentry_recorder, gateway_factory):
    """capture_exception() of an exception whose str() raises: sent, grouped by its type, logged once."""
    gateway = _bad_input_gateway(tmp_path, gateway_factory, sentry_recorder)

    ids = [httpx.get(f"{gateway.base_url}/bad/captured", timeout=CLIENT_TIMEOUT).json()["event_id"] for _ in range(2)]

    assert all(ids)

    def both_sent(recorder: Any) -> list[dict[str, Any]] | None:
        found = [e for e in recorder.events() if _exception_types(e)[-1:] == ["UnreadableError"]]
        return found if len(found) >= 2 else None

    [first, second] = sentry_recorder.wait_for(both_sent)
    assert first["fingerprint"] == second["fingerprint"] == ["UnreadableError"]  # grouped by type
    failures = failure_lines(gateway.logs())
    assert failures and set(failures.values()) == {1}, failures  # logged, once


PROCESSOR_APP = """
    from otel_gatewayz._context import processor as _context
    from otel_gatewayz._sentry import transactions as _transactions
    from examples.gateway.app import app

    # Fault injection: our two span processors break on these routes' server spans.
    _on_start = _context.ContextSpanProcessor.on_start
    _on_end = _transactions.SentryTransactionProcessor.on_end


    def on_start(self, span, parent_context=None):
        if "/broken/start" in span.name:
            raise RuntimeError("on_start broke")
        return _on_start(self, span, parent_context)


    def on_end(self, span):
        if "/broken/end" in span.name:
            raise RuntimeError("on_end broke")
        return _on_end(self, span)


    _context.ContextSpanProcessor.on_start = on_start
    _transactions.SentryTransactionProcessor.on_end = on_end


    @app.get("/broken/start")
    async def broken_start() -> dict[str, bool]:
        return {"ok": True}


    @app.get("/broken/end")
    async def broken_end() -> dict[str, bool]:
        return {"ok": True}
"""


def test_a_failing_span_processor_never_fails_the_request(tmp_path, sentry_recorder, gateway_factory):
    """A bug in one of our span processors: the request is served and the failure logged once."""
    module_dir = app_module(tmp_path / "app", "ogz_processor_app", PROCESSOR_APP)
    gateway = gateway_factory(
        env={**BASE, "SENTRY_DSN": sentry_recorder.dsn, "PYTHONPATH": pythonpath(module_dir)},
        app="ogz_processor_app:app",
        provider_url=f"http://{LOOPBACK}:9",
    )

    for _ in range(3):
        for path in ("/broken/start", "/broken/end"):
            response = httpx.get(gateway.base_url + path, timeout=CLIENT_TIMEOUT)
            assert (response.status_code, response.json()) == (200, {"ok": True})

    logs = gateway.logs()
    assert "Exception in ASGI application" not in logs
    failures = failure_lines(logs)
    assert len(failures) == 2 and set(failures.values()) == {1}, failures  # each hook's failure, once


def test_a_collector_outage_counts_every_lost_metric_and_log_export_once_per_reason(gateway_factory):
    """Metrics and logs get what spans get: each lost export counted by reason, one line per reason."""
    with RefusedPort() as refused:
        env = {
            **BASE,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{LOOPBACK}:{refused.port}",
            # Time for one retry: its line says why (refused); the final one only says "timeout".
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
        }
        gateway = gateway_factory(env=env)
        requests_as_healthy(gateway.base_url)
        for _ in range(6):  # the app logs a warning per failed provider call: log records to export
            httpx.post(
                f"{gateway.base_url}{RAW_CHAT_PATH}",
                headers=auth(),
                json={"model": "error-500", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            time.sleep(0.5)

        def lost(signal_name: str) -> dict[str, float] | None:
            found = dropped(gateway.metrics_url, signal_name)
            return found if sum(found.values()) >= 3 else None

        metric_drops = eventually(lambda: lost("metrics"), timeout=40, what="3 lost metric exports counted")
        log_drops = eventually(lambda: lost("logs"), timeout=40, what="3 lost log exports counted")
        logs = gateway.logs()
    assert set(metric_drops) == set(log_drops) == {"unreachable"}
    assert Counter(re.findall(r"(metrics|logs) export lost \((\w+)", logs)) == {
        ("metrics", "unreachable"): 1,
        ("logs", "unreachable"): 1,
    }
    upstream_lines = [line for line in logs.splitlines() if "otel_gatewayz:" not in line]
    for upstream in ("Failed to export metrics batch", "Failed to export logs batch", "Transient error"):
        assert not [line for line in upstream_lines if upstream in line], upstream
