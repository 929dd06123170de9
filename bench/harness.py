"""Processes, sinks, load client and measurements shared by ``run.py`` and ``profile_app.py``.

Everything runs on loopback: the stub provider (plain uvicorn), the telemetry sinks (their own
process, see ``sinks.py``) and one gateway at a time, each configuration in its own venv.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import venvs

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The SDK's BatchSpanProcessor exports every OTEL_BSP_SCHEDULE_DELAY (default 5 s) or when 512
# spans are queued, so the last spans of a run can wait up to 5 s: the drain covers that.
BSP_DELAY_SECONDS = 5.0
QUIET_SECONDS = 1.0
MAX_DRAIN_SECONDS = 30.0

CHAT_BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write one sentence about observability for API gateways."},
    ],
    "temperature": 0.2,
}
AUTH = {"Authorization": "Bearer gw_bench"}


@dataclass(frozen=True)
class Route:
    key: str
    method: str
    path: str
    expect: int
    body: dict[str, Any] | None = None
    close: bool = False


ROUTES = {
    # The plain-httpx relay, as before the SDK became the main chat route: results stay comparable.
    "success": Route("success", "POST", "/v1/raw/chat/completions", 200, CHAT_BODY),
    # uvicorn closes the connection after an exception escaped the app (500 already sent), so
    # the error route asks for that up front: a reused, server-closed connection would fail.
    "error": Route("error", "GET", "/v1/errors/provider", 500, close=True),
}
# A streamed relay chat (SSE through plain httpx, its usage chunk read as it passes): where the
# spend accounting (issue 24) is measured, with and without it (GATEWAYZ_SPEND).
STREAM_ROUTE = Route("stream", "POST", "/v1/raw/chat/completions", 200, {**CHAT_BODY, "stream": True})
# A chat whose provider answers after PROVIDER_SLOW_SECONDS: requests held in flight (memory runs only).
SLOW_SECONDS = 0.2
SLOW = Route("slow", "POST", "/v1/raw/chat/completions", 200, {**CHAT_BODY, "model": "slow"})
# Loads that mix the routes, request i taking routes[i % len]: a production-like error rate, and a
# provider outage where every other request fails the same way (one fingerprint: a storm).
SCENARIOS = {
    "mix": [ROUTES["success"]] * 9 + [ROUTES["error"]],
    "storm": [ROUTES["success"], ROUTES["error"]],
}


@dataclass(frozen=True)
class Config:
    """One way of running the example gateway."""

    key: str
    label: str
    kind: str  # none | otel | sentry (2.x) | sentry3 | ours
    rate: float | None = None  # traces sample rate; None = the configuration's own default
    env: tuple[tuple[str, str], ...] = ()  # extra environment (ours only)

    @property
    def exports_otlp(self) -> bool:
        return self.kind in ("otel", "ours")

    @property
    def uses_sentry(self) -> bool:
        return self.kind in ("sentry", "sentry3", "ours")


EXAMPLE_APP = "examples.gateway.app:app"
HUGE_APP = "bench.huge_app:app"  # a failing frame holding a local of any size
NO_BUDGET = (("GATEWAYZ_ERROR_EVENT_BUDGET", "unlimited"),)
VIA_OTLP = (("GATEWAYZ_SENTRY_TRACES_VIA", "otlp"),)
VIA_ENVELOPE = (("GATEWAYZ_SENTRY_TRACES_VIA", "envelope"),)
VIA_SPANS = (("GATEWAYZ_SENTRY_TRACES_VIA", "spans"),)
NO_SPEND = (("GATEWAYZ_SPEND", "false"),)
HEAD_ONLY = (("GATEWAYZ_KEEP_TRACES", "false"),)
PROD_RATE = 0.01  # our production default (APP_ENV=production), used for the peers too

CONFIGS = {
    c.key: c
    for c in (
        Config("none", "uninstrumented", "none"),
        Config("otel-100", "plain OTel @100%", "otel", 1.0),
        Config("otel-prod", "plain OTel @1%", "otel", PROD_RATE),
        Config("sentry-100", "sentry-sdk 2 @100%", "sentry", 1.0),
        Config("sentry-prod", "sentry-sdk 2 @1%", "sentry", PROD_RATE),
        # Today's sentry-sdk: no transactions, every sampled trace's spans streamed as span v2 items.
        Config("sentry3-100", "sentry-sdk 3 @100%", "sentry3", 1.0),
        Config("sentry3-prod", "sentry-sdk 3 @1%", "sentry3", PROD_RATE),
        Config("ours-100", "otel_gatewayz @100%", "ours", 1.0),
        Config("ours-prod", "otel_gatewayz @prod default (1%)", "ours", None),
        # The production default without the decision at the local root's end: pure head sampling.
        Config("ours-headonly", "otel_gatewayz @prod, head only", "ours", None, HEAD_ONLY),
        # Every error a full event (storm control off): the cost of one full Sentry event.
        Config("ours-full", "otel_gatewayz @1%, no event budget", "ours", None, NO_BUDGET),
        # Sampled traces batched to Sentry's OTLP intake instead of one envelope per request.
        Config("ours-otlp", "otel_gatewayz @100%, Sentry via OTLP", "ours", 1.0, VIA_OTLP),
        # The two envelope routes, named rather than left to `auto` (which picks by SDK major and DSN).
        Config("ours-envelope", "otel_gatewayz @100%, transactions", "ours", 1.0, VIA_ENVELOPE),
        Config("ours-spans", "otel_gatewayz @100%, span items", "ours", 1.0, VIA_SPANS),
        # The spend accounting off: its cost is the ratio to ours-100 / ours-prod (bench/run.py --spend).
        Config("ours-100-nospend", "otel_gatewayz @100%, no spend", "ours", 1.0, NO_SPEND),
        Config("ours-prod-nospend", "otel_gatewayz @prod default, no spend", "ours", None, NO_SPEND),
    )
}


# --- small utilities ------------------------------------------------------------------------


def code_state() -> str:
    """Which otel_gatewayz was measured: git HEAD, and a hash of the package's files as they are."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "otel_gatewayz").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "otel_gatewayz"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", ""
    changes = " + uncommitted changes in otel_gatewayz/" if dirty else ""
    return f"git {head}{changes}, package hash {digest.hexdigest()[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class RefusedPort:
    """A loopback port bound but not listening: connections to it are refused."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self.port = int(self._sock.getsockname()[1])

    def close(self) -> None:
        self._sock.close()


def http_json(url: str, method: str = "GET", timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def http_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 400:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads, exporters included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- sinks and provider ---------------------------------------------------------------------


class Sinks:
    """The sink process (Sentry + OTLP endpoints) and control of its fault modes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "sinks.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        ports = json.loads(self.proc.stdout.readline())
        self.sentry_port: int = ports["sentry"]
        self.otlp_port: int = ports["otlp"]

    @property
    def dsn(self) -> str:
        return f"http://public@{LOOPBACK}:{self.sentry_port}/1"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.otlp_port}"

    def stats(self) -> dict[str, dict[str, Any]]:
        return {
            "sentry": http_json(f"http://{LOOPBACK}:{self.sentry_port}/_stats"),
            "otlp": http_json(f"http://{LOOPBACK}:{self.otlp_port}/_stats"),
        }

    def set_mode(self, which: str, mode: str) -> None:
        port = self.sentry_port if which == "sentry" else self.otlp_port
        http_json(f"http://{LOOPBACK}:{port}/_mode/{mode}", method="POST")

    def idle_for(self) -> float:
        """Seconds since either sink last received anything (inf if never)."""
        idles = [s["idle_seconds"] for s in self.stats().values()]
        return min((i for i in idles if i is not None), default=float("inf"))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        stop_process(self.proc, 5)


class Provider:
    """The stub LLM provider, plain uvicorn in the running (dev) venv, never instrumented."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "provider.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "uvicorn"),
                    "examples.gateway.provider:app",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(self.port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                cwd=app_dir(workdir),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**clean_env(), "PROVIDER_SLOW_SECONDS": str(SLOW_SECONDS)},
            )
        wait_http(f"{self.url}/health", self.proc, 30, self.log)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def close(self) -> None:
        stop_process(self.proc, 5)


# --- the gateway ----------------------------------------------------------------------------


def app_dir(workdir: Path) -> Path:
    """A working directory for the servers holding only the code they import.

    Not the repo root: ``opentelemetry-instrument`` puts the working directory on PYTHONPATH,
    and the repo root holds ``otel_gatewayz.egg-info`` whose entry points would load *our*
    distro into the plain-OpenTelemetry peer.
    """
    root = workdir / "app"
    if not root.exists():
        root.mkdir()
        for name in ("examples", "otel_gatewayz", "bench"):
            (root / name).symlink_to(REPO / name, target_is_directory=True)
    return root


_DISTRO_LINE = "otel_gatewayz: service="


class SettingRejected(RuntimeError):
    """Our distro refused a setting the configuration depends on: it would measure something else."""


def rejected_setting(config: Config, log_text: str) -> str | None:
    """How the distro refused one of ``config.env``, from its log line (``NAME: 'value' is not ...``), if it did."""
    for name, value in config.env:
        for line in log_text.splitlines():
            if f"{name}: {value!r}" in line:
                return line[line.index(name) :].strip()
    return None


def check_distro(gateway: Gateway) -> None:
    """Fail loudly when our distro is loaded where it must not be (or missing where it must)."""
    loaded = _DISTRO_LINE in gateway.log.read_text(errors="replace")
    if loaded != (gateway.config.kind == "ours"):
        gateway.stop()
        raise RuntimeError(
            f"{gateway.config.label}: otel_gatewayz distro {'loaded' if loaded else 'not loaded'} (see {gateway.log})"
        )


_STRIP = re.compile(r"^(OTEL_|SENTRY_|GATEWAYZ_|APP_ENV$|RELEASE_SHA$|SERVICE_NAME$|BENCH_|PYTHONPATH$)")


def clean_env() -> dict[str, str]:
    """The caller's environment without any telemetry setting that could leak into a run."""
    return {k: v for k, v in os.environ.items() if not _STRIP.match(k)}


@dataclass
class Faults:
    sentry_mode: str = "ok"  # ok | refuse | hang | 500 | 429
    collector_down: bool = False

    @property
    def healthy(self) -> bool:
        return self.sentry_mode == "ok" and not self.collector_down

    def describe(self) -> str:
        parts = []
        if self.sentry_mode != "ok":
            parts.append(f"Sentry {self.sentry_mode}")
        if self.collector_down:
            parts.append("collector down")
        return ", ".join(parts) or "healthy"


@dataclass
class Gateway:
    config: Config
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int | None
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> str:
        if self.metrics_port is None:
            return ""
        try:
            return http_text(f"http://{LOOPBACK}:{self.metrics_port}/metrics")
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)


def gateway_command(
    config: Config,
    port: int,
    metrics_port: int,
    provider: Provider,
    sinks: Sinks,
    faults: Faults,
    refused: RefusedPort | None,
    app: str = EXAMPLE_APP,
) -> tuple[list[str], dict[str, str]]:
    dev_bin = Path(sys.executable).parent
    uvicorn_args = ["--host", LOOPBACK, "--port", str(port)]
    env = clean_env()
    env.update(GATEWAY_PROVIDER_URL=provider.url, APP_ENV="production", OTEL_SERVICE_NAME="gatewayz-api")
    refuse_sentry = faults.sentry_mode == "refuse" and refused is not None
    dsn = f"http://public@{LOOPBACK}:{refused.port}/1" if refuse_sentry and refused else sinks.dsn
    otlp = sinks.otlp_endpoint if not faults.collector_down or refused is None else f"http://{LOOPBACK}:{refused.port}"
    if config.kind == "none":
        return [str(dev_bin / "uvicorn"), app, *uvicorn_args], env
    if config.kind == "ours":
        env.update(
            SENTRY_DSN=dsn,
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            RELEASE_SHA="bench",
            OTEL_EXPORTER_PROMETHEUS_HOST=LOOPBACK,
            OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        )
        if config.rate is not None:
            env["SENTRY_TRACES_SAMPLE_RATE"] = str(config.rate)
        env.update(config.env)
        return [
            str(dev_bin / "opentelemetry-instrument"),
            str(dev_bin / "uvicorn"),
            app,
            *uvicorn_args,
        ], env
    if config.kind == "otel":
        venv_bin = venvs.ensure_venv("otel") / "bin"
        env.update(
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=str(config.rate),
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_PROMETHEUS_HOST=LOOPBACK,
            OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        )
        return [
            str(venv_bin / "opentelemetry-instrument"),
            "--traces_exporter",
            "otlp_proto_http",
            "--metrics_exporter",
            "prometheus",
            str(venv_bin / "uvicorn"),
            app,
            *uvicorn_args,
        ], env
    if config.kind in ("sentry", "sentry3"):
        venv_bin = venvs.ensure_venv(config.kind) / "bin"
        env.update(BENCH_SENTRY_DSN=dsn, BENCH_SENTRY_RATE=str(config.rate))
        return [str(venv_bin / "uvicorn"), "bench.sentry_app:app", *uvicorn_args], env
    raise ValueError(config.kind)


def start_gateway(
    config: Config,
    provider: Provider,
    sinks: Sinks,
    workdir: Path,
    faults: Faults | None = None,
    refused: RefusedPort | None = None,
    wrap: list[str] | None = None,
    tag: str = "",
    app: str = EXAMPLE_APP,
) -> Gateway:
    faults = faults or Faults()
    port, metrics_port = free_port(), free_port()
    argv, env = gateway_command(config, port, metrics_port, provider, sinks, faults, refused, app)
    log = workdir / f"gateway-{config.key}{tag}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*(wrap or []), *argv], cwd=app_dir(workdir), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    gateway = Gateway(config, proc, port, metrics_port if config.kind in ("ours", "otel") else None, log)
    wait_http(f"{gateway.url}/health", proc, 60, log)
    check_distro(gateway)
    rejection = rejected_setting(config, log.read_text(errors="replace"))
    if rejection is not None:
        gateway.stop()
        raise SettingRejected(f"the otel_gatewayz measured refuses it: {rejection[:160]}")
    return gateway


# --- load -----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    latencies: list[float]
    statuses: Counter[str]
    wall: float
    by_route: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else float("nan")


async def _drive(base: str, routes: list[Route], n: int, concurrency: int, rps: float | None) -> LoadResult:
    """``n`` requests, at most ``concurrency`` in flight; back to back, or started at ``rps`` a second."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    by_route: dict[str, list[float]] = {}
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60, headers=AUTH) as client:

        async def one(i: int) -> None:
            route = routes[i % len(routes)]
            started = time.perf_counter()
            try:
                response = await client.request(
                    route.method, route.path, json=route.body, headers={"Connection": "close"} if route.close else None
                )
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - started)
            by_route.setdefault(route.key, []).append(latencies[-1])

        t0 = time.perf_counter()
        if rps is None:
            counter = iter(range(n))

            async def worker() -> None:
                for i in counter:
                    await one(i)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            slots = asyncio.Semaphore(concurrency)
            tasks = []

            async def paced(i: int) -> None:
                try:
                    await one(i)
                finally:
                    slots.release()

            for i in range(n):
                delay = t0 + i / rps - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                tasks.append(asyncio.create_task(paced(i)))
            await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    return LoadResult(latencies, statuses, wall, by_route)


RPS: float | None = None  # set by the command line: paced load instead of back-to-back


def drive(base: str, routes: list[Route], n: int, concurrency: int) -> LoadResult:
    return asyncio.run(_drive(base, routes, n, concurrency, RPS))


def drain(sinks: Sinks, config: Config, since: float) -> float:
    """Wait until the telemetry of the requests sent so far has left the gateway.

    Exporters run on background threads: the Sentry worker sends at once, the batch span
    processor up to ``BSP_DELAY_SECONDS`` later. So: at least that long after the last
    request for OTLP-exporting configurations, and until both sinks have been quiet for
    ``QUIET_SECONDS``. Returns the seconds waited.
    """
    minimum = BSP_DELAY_SECONDS + 0.5 if config.exports_otlp else (QUIET_SECONDS if config.uses_sentry else 0.3)
    while True:
        waited = time.monotonic() - since
        if waited >= MAX_DRAIN_SECONDS:
            return waited
        if waited >= minimum and (not (config.exports_otlp or config.uses_sentry) or sinks.idle_for() >= QUIET_SECONDS):
            return waited
        time.sleep(0.1)


@dataclass
class Measurement:
    config: Config
    route: str
    n: int
    cpu_ms: float  # CPU per request of the gateway process, ms
    p50_ms: float
    p99_ms: float
    rps: float
    statuses: dict[str, int]
    drain_s: float
    sentry_posts: int
    otlp_posts: int
    sentry_items: dict[str, int]
    rss_mb: float
    faults: str = "healthy"
    dropped: float | None = None  # our drop counter's increase during the run (ours only)
    extra: dict[str, Any] = field(default_factory=dict)


def _posts(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], which: str) -> int:
    return int(after[which]["requests"]) - int(before[which]["requests"])


def measure(
    gateway: Gateway,
    sinks: Sinks,
    route: Route | str,
    n: int,
    concurrency: int,
    faults: Faults | None = None,
    path: str | None = None,
) -> Measurement:
    """CPU/request (flushed telemetry included) and client-side latency for ``n`` requests.

    Call it on a drained gateway (after ``warm_up`` or another ``measure``, which both end drained).
    """
    before = sinks.stats()
    drops0 = dropped(gateway)
    routes = SCENARIOS[route] if isinstance(route, str) else [route if path is None else replace(route, path=path)]
    key = route if isinstance(route, str) else route.key
    cpu0 = cpu_seconds(gateway.pid)
    result = drive(gateway.url, routes, n, concurrency)
    ended = time.monotonic()
    drained = drain(sinks, gateway.config, ended)
    cpu1 = cpu_seconds(gateway.pid)
    after = sinks.stats()
    drops1 = dropped(gateway)
    return Measurement(
        config=gateway.config,
        route=key,
        n=n,
        cpu_ms=(cpu1 - cpu0) / n * 1000,
        p50_ms=percentile(result.latencies, 50) * 1000,
        p99_ms=percentile(result.latencies, 99) * 1000,
        rps=result.rps,
        statuses=dict(result.statuses),
        drain_s=drained,
        sentry_posts=_posts(before, after, "sentry"),
        otlp_posts=_posts(before, after, "otlp"),
        sentry_items={
            k: v - before["sentry"]["items"].get(k, 0)
            for k, v in after["sentry"]["items"].items()
            if v - before["sentry"]["items"].get(k, 0)
        },
        rss_mb=rss_mb(gateway.pid),
        faults=(faults or Faults()).describe(),
        dropped=None if drops0 is None or drops1 is None else drops1 - drops0,
        extra={"success_p99_ms": percentile(result.by_route.get("success", []), 99) * 1000},
    )


def dropped(gateway: Gateway) -> float | None:
    """Our ``gatewayz_telemetry_dropped_total`` (all labels), scraped from /metrics; None if not ours."""
    if gateway.config.kind != "ours":
        return None
    return sum(metric_total(gateway.metrics(), "gatewayz_telemetry_dropped_total").values())


def warm_up(gateway: Gateway, sinks: Sinks, n: int, concurrency: int) -> None:
    """Both routes, then a full drain, so no warm-up telemetry is exported during a measurement."""
    drive(gateway.url, list(ROUTES.values()), n, concurrency)
    drain(sinks, gateway.config, time.monotonic())


def metric_total(metrics_text: str, name: str) -> dict[str, float]:
    """Sum of a Prometheus counter's samples, by their label set (resource labels dropped)."""
    totals: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(r"^(\w+)(\{(.*)\})?\s+([0-9.eE+-]+)$", line)
        if not match or match.group(1) != name:
            continue
        labels = ",".join(
            part
            for part in (match.group(3) or "").split(",")
            if part and not part.startswith(("service_", "deployment_", "job=", "instance=", "otel_scope_"))
        )
        totals[labels] = totals.get(labels, 0.0) + float(match.group(4))
    return totals
