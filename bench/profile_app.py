"""Where does the gateway's CPU go? Sample it with py-spy under load and attribute the time.

    python bench/profile_app.py                          # ours@100% and plain OTel@100%, both routes
    python bench/profile_app.py --configs ours-prod,otel-prod,sentry-prod --routes error
    python bench/profile_app.py --configs ours-100,ours-100-nospend --routes stream   # the spend accounting

Each configuration runs exactly as in ``run.py`` (same venvs, sinks, provider, warm-up). py-spy
(``pip install py-spy``, built into a cache venv by ``venvs.py``) attaches to the gateway
process with ``--nonblocking`` (it never pauses the target), samples every thread while the
load runs and until the telemetry has drained, and writes raw collapsed stacks, kept in the
work directory printed at the start.

The report attributes each sample three ways:

* **owner**: the innermost frame that belongs to a package (stdlib frames are charged to the
  package that called into the stdlib: ``re.sub`` called from our scrubber is ours);
* **on behalf of otel_gatewayz**: the sample has one of our frames anywhere on its stack
  (so sentry-sdk serialising an event we asked for counts here, and under sentry_sdk as owner;
  on the event loop our ASGI wrappers, such as the release-health sessions, sit above the app,
  so there this line takes in the app's own work below them: read the owner line for ours);
* **thread**: MainThread (the event loop serving requests) vs exporter threads;

and lists our functions by inclusive share and the hottest leaf functions overall. Shares are
turned into milliseconds per request with the CPU time the kernel reports for the same window.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness
import venvs
from harness import CONFIGS, ROUTES, STREAM_ROUTE, Provider, Sinks

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages/)")

# (prefix of the path inside site-packages, owner), first match wins.
_PACKAGES = (
    ("opentelemetry/instrumentation/", "otel instrumentation"),
    ("opentelemetry/util/http", "otel instrumentation"),
    ("opentelemetry/sdk/", "otel sdk"),
    ("opentelemetry/exporter/", "otel exporters"),
    ("opentelemetry/proto/", "otel exporters"),
    ("google/protobuf/", "otel exporters"),
    ("opentelemetry/", "otel api"),
    ("prometheus_client/", "prometheus_client"),
    ("sentry_sdk/", "sentry_sdk"),
    ("urllib3/", "urllib3/requests (exporter HTTP)"),
    ("requests/", "urllib3/requests (exporter HTTP)"),
    ("starlette/", "starlette/fastapi"),
    ("fastapi/", "starlette/fastapi"),
    ("pydantic", "pydantic"),
    ("uvicorn/", "uvicorn/h11 (server)"),
    ("h11/", "uvicorn/h11 (server)"),
    ("click/", "uvicorn/h11 (server)"),
    ("httpx/", "httpx/httpcore (client)"),
    ("httpcore/", "httpx/httpcore (client)"),
    ("anyio/", "anyio"),
    ("otel_gatewayz/", "otel_gatewayz"),
)
# Leaves where a thread blocks or is being woken (lock, queue, select, socket read): time spent
# handing the GIL over, not code of the frame's owner.
_WAIT_LEAVES = (
    "Condition.wait",
    "Event.wait",
    "Queue.get",
    "EpollSelector.select",
    "SocketIO.readinto",
    "Thread.join",
    "sleep",
)
WAITING = "waiting/wake-ups (locks, queues, sockets)"


def owner_of(path: str) -> str | None:
    """The package a source file belongs to; None for the stdlib."""
    if "/site-packages/" in path:
        inside = path.split("/site-packages/", 1)[1]
        return next((owner for prefix, owner in _PACKAGES if inside.startswith(prefix)), "other")
    parts = path.split("/")
    if "otel_gatewayz" in parts[:-1]:  # the package and its subpackages (``_privacy/``, ``_sentry/``...)
        return "otel_gatewayz"
    if len(parts) >= 3 and parts[-3:-1] == ["examples", "gateway"]:
        return "example app"
    if len(parts) >= 2 and parts[-2] == "bench":
        return "bench shim"
    if _STDLIB.search(path) or path.startswith("<"):
        return None
    return "other"


def parse(path: Path) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(thread name, frames root->leaf as (function, file), count) per collapsed stack line."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        parts = body.split(";")
        thread = parts[0].split(": ", 1)[1] if parts[0].startswith("thread") and ": " in parts[0] else parts[0]
        frames = []
        for part in parts[1:]:
            match = _FRAME.match(part)
            frames.append((match["func"], match["file"]) if match else (part, ""))
        stacks.append((thread, frames, int(count)))
    return stacks


def _thread_kind(name: str) -> str:
    if name == "MainThread":
        return "MainThread (event loop)"
    if "BatchSpan" in name or "BatchProcessor" in name or "Otel" in name:
        return "OTel batch span exporter"
    if "sentry" in name.lower():
        return "sentry-sdk worker"
    if "otel_gatewayz" in name:
        return f"{name} (ours)"  # the error-event worker, the transaction sender, the metrics writer
    if "PeriodicExporting" in name or "Metric" in name:
        return "OTel metric reader"
    return f"other ({name})"


def short(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1]
    parts = path.split("/")
    return "/".join(parts[-2:])


def analyse(path: Path, cpu_ms_per_req: float, top: int) -> list[str]:
    stacks = parse(path)
    total = sum(c for _, _, c in stacks) or 1
    owners: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    behalf: Counter[str] = Counter()  # owner of samples with one of our frames on the stack
    ours_inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for thread, frames, count in stacks:
        threads[_thread_kind(thread)] += count
        if frames and frames[-1][0] in _WAIT_LEAVES:
            owner = WAITING
        else:
            owner = next((o for o in (owner_of(f) for _, f in reversed(frames)) if o), "stdlib only")
        owners[owner] += count
        ours_funcs = {f"{func} ({short(file)})" for func, file in frames if owner_of(file) == "otel_gatewayz"}
        if ours_funcs:
            behalf[owner] += count
        for name in ours_funcs:
            ours_inclusive[name] += count
        if frames:
            func, file = frames[-1]
            leaves[f"{func} ({short(file)})"] += count

    def row(name: str, n: int) -> str:
        return f"    {name:<58} {100 * n / total:5.1f}%  {cpu_ms_per_req * n / total:6.3f} ms/req"

    out = [f"  samples: {total} (non-idle, all threads); CPU in this window {cpu_ms_per_req:.3f} ms/request"]
    out.append("  by thread:")
    out += [row(k, v) for k, v in threads.most_common()]
    out.append("  by owner (innermost package frame; stdlib charged to its caller; blocking leaves apart):")
    out += [row(k, v) for k, v in owners.most_common()]
    n_behalf = sum(behalf.values())
    out.append(
        f"  on behalf of otel_gatewayz (one of our frames on the stack): {100 * n_behalf / total:.1f}% "
        f"= {cpu_ms_per_req * n_behalf / total:.3f} ms/req, of which owner:"
    )
    out += [row(k, v) for k, v in behalf.most_common()]
    out.append(f"  otel_gatewayz functions, inclusive (top {top}):")
    out += [row(k, v) for k, v in ours_inclusive.most_common(top)]
    out.append(f"  hottest leaf functions (top {top}):")
    out += [row(k, v) for k, v in leaves.most_common(top)]
    return out


def profile_one(
    key: str, route_key: str, args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path, spy: Path
) -> list[str]:
    config = CONFIGS[key]
    route = {**ROUTES, STREAM_ROUTE.key: STREAM_ROUTE}[route_key]
    gateway = harness.start_gateway(config, provider, sinks, workdir, tag=f"-profile-{route_key}")
    raw = workdir / f"profile-{key}-{route_key}.txt"
    try:
        harness.warm_up(gateway, sinks, args.warmup, args.concurrency)
        spy_log = (workdir / f"py-spy-{key}-{route_key}.log").open("wb")
        proc = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(gateway.pid),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--rate",
                str(args.rate),
                "--nonblocking",
                "--threads",
                "--full-filenames",
                *(["--gil"] if args.gil else []),
            ],
            stdout=spy_log,
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)
        cpu0 = harness.cpu_seconds(gateway.pid)
        harness.drive(gateway.url, [route], args.requests, args.concurrency)
        harness.drain(sinks, config, time.monotonic())
        cpu1 = harness.cpu_seconds(gateway.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        spy_log.close()
    finally:
        gateway.stop()
    cpu_ms = (cpu1 - cpu0) / args.requests * 1000
    return [
        f"\n== {config.label}, {route_key} route ({args.requests} requests; raw stacks: {raw})",
        *analyse(raw, cpu_ms, args.top),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="ours-100,otel-100")
    parser.add_argument("--routes", default="success,error")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL: threads waiting for it (after a write, a wake-up) cost nothing",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--analyse", type=Path, nargs="*", help="only analyse existing raw files")
    args = parser.parse_args()
    if args.analyse:
        for path in args.analyse:
            print(f"\n== {path}")
            print("\n".join(analyse(path, float("nan"), args.top)))
        return
    spy = venvs.ensure_venv("pyspy") / "bin" / "py-spy"
    workdir = Path(tempfile.mkdtemp(prefix="ogz-profile-"))
    print(f"profiles in {workdir}", file=sys.stderr, flush=True)
    sinks = Sinks()
    provider = Provider(workdir)
    try:
        for key in args.configs.split(","):
            for route_key in args.routes.split(","):
                print(
                    "\n".join(profile_one(key.strip(), route_key.strip(), args, provider, sinks, workdir, spy)),
                    flush=True,
                )
    finally:
        provider.close()
        sinks.close()


if __name__ == "__main__":
    main()
