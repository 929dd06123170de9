"""Benchmark: what does otel_gatewayz cost a FastAPI gateway, against what users would pick instead?

One command, from the repo root, with the dev venv's Python (it has otel_gatewayz installed,
httpx and uvicorn)::

    python bench/run.py                 # default: 2000 chat + 1000 error requests per configuration (~5 min)
    python bench/run.py --quick         # smoke run: 300 + 150 requests
    python bench/run.py --rounds 3      # every configuration 3 times, interleaved: median ratios
    python bench/run.py --memory        # RSS after warm-up vs after 50,000 requests (ours @100%)
    python bench/run.py --memory --memory-config ours-prod --memory-slow   # + 1 in 10 slow requests
    python bench/run.py --sentry-mode hang      # fault run: p99 of a faulty run vs a healthy one
    python bench/run.py --collector-down
    python bench/run.py --spend --rounds 3      # the spend accounting's CPU on a streamed relay chat

For each configuration the gateway (the example app, ``examples/gateway/app.py``) runs as its
own process next to the stub provider (plain uvicorn) and loopback telemetry sinks. For each
route (chat success path, provider-error path) the client keeps ``--concurrency`` requests in
flight for ``--requests`` requests (``--error-requests`` on the error route) and we record:

* CPU per request of the gateway process: utime+stime of all its threads from
  ``/proc/<pid>/stat``, read before the load and after its telemetry has left (see
  ``harness.drain``), so export threads are counted;
* p50 / p99 latency seen by the client;

each as a ratio to the uninstrumented app measured in the same invocation. The peers run in
their own venvs (built once by ``bench/venvs.py`` with the same package versions). The exit
code is 0 whatever the figures: this is a report.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import harness
from harness import (
    CONFIGS,
    HUGE_APP,
    ROUTES,
    SCENARIOS,
    STREAM_ROUTE,
    Faults,
    Measurement,
    Provider,
    RefusedPort,
    Route,
    SettingRejected,
    Sinks,
)

TARGET_FULL = 1.25  # ours@100% CPU/request <= 1.25 x plain OTel@100%
TARGET_PROD = 1.10  # ours@prod default <= 1.1 x plain OTel@same rate, and < sentry-sdk@same rate
TARGET_FULL_EVENT = 0.25  # ours, error with a full event: CPU/req <= 0.25 x sentry-sdk's native integration
TARGET_STORM = 2.0  # ours in a storm of one fingerprint: CPU/error request <= 2 x uninstrumented
TARGET_STORM_P99 = 1.25  # p99 of successes during a storm <= 1.25 x the same load without errors
TARGET_HUGE = 1.25  # request-path CPU of an error whose frame holds a huge local <= 1.25 x a small one
HUGE_ROWS = 300_000  # ~20 MB of strings in one local
TARGET_PEER3 = 1.0  # ours@prod CPU/chat request <= sentry-sdk 3's native integration @1%
TARGET_SPANS = 1.0  # ours@100% sending span v2 items: CPU/request <= ours sending transaction envelopes
TARGET_KEEP = 1.15  # ours@prod (errors keep their traces) CPU/req <= 1.15 x the same with pure head sampling
TARGET_RSS_MB = 10.0  # RSS growth over 50,000 requests
TARGET_SPEND = 1.03  # ours with the spend accounting <= 1.03 x ours without it, CPU per streamed relay chat
SPEND_PAIRS = (("ours-100", "ours-100-nospend"), ("ours-prod", "ours-prod-nospend"))
MEMORY_REQUESTS = 50_000


def _ratio(value: float, base: float) -> str:
    if not base or math.isnan(base) or math.isnan(value):
        return "   -  "
    return f"{value / base:5.2f}x"


def _statuses(m: Measurement) -> str:
    known = {**ROUTES, STREAM_ROUTE.key: STREAM_ROUTE}
    routes = SCENARIOS.get(m.route) or [known.get(m.route) or Route(m.route, "GET", "", 500)]
    expected = {str(route.expect) for route in routes}
    bad = {k: v for k, v in m.statuses.items() if k not in expected}
    return "ok" if not bad else "UNEXPECTED " + ",".join(f"{k}:{v}" for k, v in sorted(bad.items()))


def _txns(m: Measurement) -> str:
    """Transaction envelopes, ``N+`` batches posted to Sentry's OTLP intake, or ``Ns`` span v2 items."""
    intake, spans = m.sentry_items.get("otlp_intake", 0), m.sentry_items.get("span", 0)
    if intake:
        return f"{intake}+"
    return f"{spans}s" if spans else str(m.sentry_items.get("transaction", 0))


def print_table(results: list[Measurement], title: str) -> None:
    print(f"\n{title}")
    header = (
        f"{'configuration':<36} {'route':<8} {'CPU ms/req':>10} {'x base':>7} {'p50 ms':>8} {'x base':>7} "
        f"{'p99 ms':>8} {'x base':>7} {'req/s':>7} {'events':>6} {'txns':>5} {'otlp':>5} {'drops':>6} "
        f"{'RSS MB':>7}  status"
    )
    print(header)
    print("-" * len(header))
    base = {m.route: m for m in results if m.config.key == "none" and m.faults == "healthy"}
    for route in dict.fromkeys(m.route for m in results):
        for m in (r for r in results if r.route == route):
            b = base.get(route)
            label = m.config.label + ("" if m.faults == "healthy" else f" [{m.faults}]")
            print(
                f"{label:<36} {m.route:<8} {m.cpu_ms:10.3f} {_ratio(m.cpu_ms, b.cpu_ms) if b else '':>7} "
                f"{m.p50_ms:8.2f} {_ratio(m.p50_ms, b.p50_ms) if b else '':>7} "
                f"{m.p99_ms:8.2f} {_ratio(m.p99_ms, b.p99_ms) if b else '':>7} {m.rps:7.0f} "
                f"{m.sentry_items.get('event', 0):6d} {_txns(m):>5} {m.otlp_posts:5d} "
                f"{'-' if m.dropped is None else f'{m.dropped:.0f}':>6} "
                f"{m.rss_mb:7.1f}  {_statuses(m)}"
            )
        print()
    print("CPU ms/req: gateway process (all threads), telemetry flushed; x base: ratio to uninstrumented;")
    print("events / txns: Sentry error events and transactions the sink received during the route's run (fewer")
    print("than requests x rate means the SDK dropped some; N+: span batches posted to Sentry's OTLP intake;")
    print("Ns: span v2 items, one envelope per trace, the way sentry-sdk 3 sends spans);")
    print("otlp: OTLP/HTTP posts received by the collector sink; drops: increase of")
    print("our gatewayz_telemetry_dropped_total (ours only). mix: 9 chat to 1 provider error; storm: every other")
    print("request the same provider error (one fingerprint), success p99 in the targets below.")


def _find(results: list[Measurement], key: str, route: str) -> Measurement | None:
    return next((m for m in results if m.config.key == key and m.route == route and m.faults == "healthy"), None)


Pick = Callable[[Measurement], float]
# Configurations this invocation could not measure, and why (one line each in the targets).
SKIPPED: dict[str, str] = {}


def _cpu(m: Measurement) -> float:
    return m.cpu_ms


def _pairs(
    rounds: list[list[Measurement]],
    key: str,
    base_key: str,
    route: str,
    base_route: str | None = None,
    value: Pick = _cpu,
    base: Pick = _cpu,
) -> list[tuple[float, float]]:
    """``(value, base)`` of every round that measured both: a ratio is only taken within a round."""
    found = []
    for results in rounds:
        a, b = _find(results, key, route), _find(results, base_key, base_route or route)
        if a and b:
            found.append((value(a), base(b)))
    return found


def _target(
    tag: str, what: str, pairs: list[tuple[float, float]], limit: float, strict: bool = False, digits: int = 3
) -> str | None:
    """One target line against ``limit`` (``<`` when ``strict``, else ``<=``): the median of the rounds' ratios."""
    if not pairs:
        return None
    ratios = sorted(value / base for value, base in pairs)
    ratio = statistics.median(ratios)
    verdict = "HOLDS" if (ratio < limit if strict else ratio <= limit) else "FAILS"
    if len(pairs) == 1:
        value, base = pairs[0]
        return f"  [{verdict}] {tag:<7} {what}: {value:.{digits}f} / {base:.{digits}f} ms = {ratio:.2f}x"
    spread = " ".join(f"{r:.2f}" for r in ratios)
    return f"  [{verdict}] {tag:<7} {what}: median of {len(pairs)} rounds {ratio:.2f}x (rounds: {spread})"


def _not_measured(tag: str, what: str, keys: list[str]) -> str | None:
    """The target line of a configuration that was skipped (say why), or None when it was just not asked for."""
    reason = next((f"{key} {SKIPPED[key]}" for key in keys if key in SKIPPED), None)
    return None if reason is None else f"  [  -  ] {tag:<7} {what}: not measured: {reason}"


def print_targets(rounds: list[list[Measurement]], rss_growth: float | None) -> list[str]:
    """The targets; with several rounds, each ratio is taken within a round and the median decides."""
    lines = ["", "Targets (issue 7)"]

    def add(line: str | None) -> None:
        if line is not None:
            lines.append(line)

    for route in ROUTES:
        what = f"ours@100% CPU/req <= {TARGET_FULL} x plain OTel@100%"
        add(_target(route, what, _pairs(rounds, "ours-100", "otel-100", route), TARGET_FULL))
        what = f"ours@prod CPU/req <= {TARGET_PROD} x plain OTel@1%"
        add(_target(route, what, _pairs(rounds, "ours-prod", "otel-prod", route), TARGET_PROD))
        what = "ours@prod CPU/req < sentry-sdk 2@1%"
        add(_target(route, what, _pairs(rounds, "ours-prod", "sentry-prod", route), 1.0, True))
    lines.append("Targets (issue 14; the error route is 1 fingerprint: past the budget of 10 it is a storm)")
    what = f"ours, a full event each, CPU/req <= {TARGET_FULL_EVENT} x sentry-sdk 2@1%"
    add(_target("error", what, _pairs(rounds, "ours-full", "sentry-prod", "error"), TARGET_FULL_EVENT))
    what = f"ours@prod CPU/error req <= {TARGET_STORM} x uninstrumented"
    add(_target("storm", what, _pairs(rounds, "ours-prod", "none", "error"), TARGET_STORM))
    for key in ("ours-prod", "ours-100", "none"):
        pairs = _pairs(rounds, key, key, "storm", "success", lambda m: m.extra["success_p99_ms"], lambda m: m.p99_ms)
        what = f"{key}: p99 of the successes during the storm <= {TARGET_STORM_P99} x without errors"
        line = _target("storm", what, pairs, TARGET_STORM_P99, digits=1)
        # The same two loads uninstrumented: what the errors themselves do to the successes' p99.
        add(line if key != "none" or line is None else line.replace("[HOLDS]", "[ ref ]").replace("[FAILS]", "[ ref ]"))
    what = f"ours@100% via Sentry's OTLP intake CPU/req <= {TARGET_FULL} x plain OTel@100%"
    add(_target("success", what, _pairs(rounds, "ours-otlp", "otel-100", "success"), TARGET_FULL))
    lines.append("Targets (issue 21: today's peer, sentry-sdk 3, which streams spans as span v2 items)")
    what = "ours@prod CPU/chat req <= sentry-sdk 3@1%"
    add(_target("success", what, _pairs(rounds, "ours-prod", "sentry3-prod", "success"), TARGET_PEER3))
    what = "ours@100% as span items CPU/req <= ours@100% as transaction envelopes"
    pairs = _pairs(rounds, "ours-spans", "ours-envelope", "success")
    add(
        _target("success", what, pairs, TARGET_SPANS) or _not_measured("success", what, ["ours-spans", "ours-envelope"])
    )
    lines.append("Targets (issue 22: errors keep their traces, decided at the local root's end)")
    for route in ("success", "mix", "storm"):
        what = f"ours@prod CPU/req <= {TARGET_KEEP} x ours@prod head only"
        add(_target(route, what, _pairs(rounds, "ours-prod", "ours-headonly", route), TARGET_KEEP))
    if rss_growth is None:
        lines.append(
            f"  [  -  ] RSS growth < {TARGET_RSS_MB:.0f} MB over {MEMORY_REQUESTS:,} requests: "
            "not measured in this run (python bench/run.py --memory)"
        )
    else:
        verdict = "HOLDS" if rss_growth < TARGET_RSS_MB else "FAILS"
        lines.append(
            f"  [{verdict}] RSS growth < {TARGET_RSS_MB:.0f} MB over {MEMORY_REQUESTS:,} requests: {rss_growth:+.1f} MB"
        )
    print("\n".join(lines))
    return lines


def median_results(rounds: list[list[Measurement]]) -> list[Measurement]:
    """Per configuration and load, the round with the median CPU/request (the lower one of an even count)."""
    merged = []
    for first in rounds[0]:
        same = [
            m
            for results in rounds
            for m in results
            if (m.config.key, m.route, m.faults) == (first.config.key, first.route, first.faults)
        ]
        merged.append(sorted(same, key=_cpu)[(len(same) - 1) // 2])
    return merged


def run_configs(
    keys: list[str], args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path
) -> list[Measurement]:
    results: list[Measurement] = []
    for key in keys:
        config = CONFIGS[key]
        started = time.monotonic()
        try:
            gateway = harness.start_gateway(config, provider, sinks, workdir)
        except SettingRejected as err:
            SKIPPED[key] = f"skipped, {err}"
            print(f"  {config.label:<34} {SKIPPED[key]}", file=sys.stderr, flush=True)
            continue
        try:
            harness.warm_up(gateway, sinks, args.warmup, args.concurrency)
            for route in ROUTES.values():
                n = args.error_requests if route.key == "error" else args.requests
                results.append(harness.measure(gateway, sinks, route, n, args.concurrency))
            if args.scenarios:
                for scenario in SCENARIOS:
                    results.append(harness.measure(gateway, sinks, scenario, args.requests, args.concurrency))
        finally:
            gateway.stop()
        print(f"  {config.label:<34} done in {time.monotonic() - started:5.1f}s", file=sys.stderr, flush=True)
    return results


def huge_locals_run(args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path) -> None:
    """An error whose failing frame holds a small local vs a huge one: what does the distro add per error?

    Building the huge local costs the route the same with and without us, so the figure is our
    overhead over the uninstrumented app at each size, with a full Sentry event for every error.
    """
    route = Route("huge", "GET", "/v1/errors/huge", 500, close=True)
    results: list[Measurement] = []
    for key in ("none", "ours-full"):
        gateway = harness.start_gateway(CONFIGS[key], provider, sinks, workdir, tag="-huge", app=HUGE_APP)
        try:
            harness.drive(gateway.url, [replace(route, path=f"{route.path}?rows=10")], 20, args.concurrency)
            harness.drain(sinks, gateway.config, time.monotonic())
            for label, rows in (("small", 10), ("huge", HUGE_ROWS)):
                m = harness.measure(
                    gateway, sinks, route, args.error_requests, args.concurrency, path=f"{route.path}?rows={rows}"
                )
                m.route = f"{label}-local"
                results.append(m)
        finally:
            gateway.stop()
    print_table(results, f"Huge locals: {args.error_requests} error requests each, a local of 10 vs {HUGE_ROWS:,} rows")
    base = {m.route: m for m in results if m.config.key == "none"}
    ours = {m.route: m for m in results if m.config.key != "none"}
    small = ours["small-local"].cpu_ms - base["small-local"].cpu_ms
    huge = ours["huge-local"].cpu_ms - base["huge-local"].cpu_ms
    verdict = "HOLDS" if huge <= TARGET_HUGE * max(small, 1e-9) else "FAILS"
    print(
        f"  [{verdict}] ours' CPU per error over uninstrumented, huge local <= {TARGET_HUGE} x small local: "
        f"{huge:.3f} vs {small:.3f} ms"
    )


def spend_run(args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path) -> None:
    """The spend accounting's CPU per streamed relay chat: ours with it vs without it (GATEWAYZ_SPEND=false).

    Each round measures every configuration once, interleaved; each target is the median over the
    rounds of the ratio taken within a round.
    """
    keys = [key for pair in SPEND_PAIRS for key in pair]
    rounds: list[list[Measurement]] = []
    for number in range(1, args.rounds + 1):
        print(f" spend round {number} of {args.rounds}", file=sys.stderr, flush=True)
        results = []
        for key in keys:
            gateway = harness.start_gateway(CONFIGS[key], provider, sinks, workdir, tag="-spend")
            try:
                harness.warm_up(gateway, sinks, args.warmup, args.concurrency)
                harness.drive(gateway.url, [STREAM_ROUTE], args.warmup // 2, args.concurrency)
                results.append(harness.measure(gateway, sinks, STREAM_ROUTE, args.requests, args.concurrency))
            finally:
                gateway.stop()
        rounds.append(results)
    print_table(median_results(rounds), f"Spend accounting: {args.requests} streamed relay chats each")
    for with_key, without_key in SPEND_PAIRS:
        ratios = []
        for results in rounds:
            by_key = {m.config.key: m for m in results}
            ratios.append(_cpu(by_key[with_key]) / _cpu(by_key[without_key]))
        ratio = statistics.median(ratios)
        verdict = "HOLDS" if ratio <= TARGET_SPEND else "FAILS"
        spread = ", ".join(f"{r:.3f}" for r in ratios)
        print(
            f"  [{verdict}] {CONFIGS[with_key].label}: CPU per streamed relay chat with the spend accounting "
            f"<= {TARGET_SPEND} x without: {ratio:.3f}x (rounds: {spread})"
        )


def memory_run(args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path) -> float:
    """RSS after warm-up vs after 50,000 requests: 9 chat : 1 error (one fingerprint: a storm).

    ``--memory-slow``: 8 chat : 1 error : 1 slow chat (held ``SLOW_SECONDS`` by the provider), so
    that traces stay held in flight while the load goes on.
    """
    config = CONFIGS[args.memory_config]
    gateway = harness.start_gateway(config, provider, sinks, workdir, tag="-memory")
    routes = [ROUTES["success"]] * 9 + [ROUTES["error"]]
    if args.memory_slow:
        routes = [ROUTES["success"]] * 8 + [ROUTES["error"], harness.SLOW]
    try:
        harness.warm_up(gateway, sinks, max(args.warmup, 1000), args.concurrency)
        rss0 = harness.rss_mb(gateway.pid)
        slow = ", 1 in 10 slow" if args.memory_slow else ""
        print(f"\nMemory: {config.label}{slow}, RSS after warm-up {rss0:.1f} MB", flush=True)
        step = MEMORY_REQUESTS // 10
        done = 0
        statuses: dict[str, int] = {}
        started = time.monotonic()
        while done < MEMORY_REQUESTS:
            result = harness.drive(gateway.url, routes, step, args.concurrency)
            for k, v in result.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
            done += step
            print(
                f"  after {done:6d} requests: RSS {harness.rss_mb(gateway.pid):7.1f} MB "
                f"({time.monotonic() - started:5.0f}s)",
                flush=True,
            )
        harness.drain(sinks, config, time.monotonic())
        rss1 = harness.rss_mb(gateway.pid)
        print(f"  drained: RSS {rss1:.1f} MB; growth {rss1 - rss0:+.1f} MB over {done:,} requests; statuses {statuses}")
        return rss1 - rss0
    finally:
        gateway.stop()


def fault_run(args: argparse.Namespace, provider: Provider, sinks: Sinks, workdir: Path) -> None:
    """ours@100% healthy, then the same with the fault: p50/p99, CPU, statuses, drops counted."""
    faults = Faults(sentry_mode=args.sentry_mode, collector_down=args.collector_down)
    config = CONFIGS[args.fault_config]
    refused = RefusedPort()
    results: list[Measurement] = run_configs(["none", config.key], args, provider, sinks, workdir)
    notes: list[str] = []
    try:
        if faults.sentry_mode in ("500", "429", "hang"):
            sinks.set_mode("sentry", faults.sentry_mode)
        gateway = harness.start_gateway(config, provider, sinks, workdir, faults=faults, refused=refused, tag="-fault")
        try:
            harness.warm_up(gateway, sinks, args.warmup, args.concurrency)
            for route in ROUTES.values():
                n = args.error_requests if route.key == "error" else args.requests
                m = harness.measure(gateway, sinks, route, n, args.concurrency, faults)
                results.append(m)
            metrics = gateway.metrics()
            drops = harness.metric_total(metrics, "gatewayz_telemetry_dropped_total")
            notes.append(f"gatewayz_telemetry_dropped_total after the faulty run: {drops or 'no samples'}")
        finally:
            gateway.stop()
        log = gateway.log.read_text(errors="replace")
        drop_lines = [line for line in log.splitlines() if "otel_gatewayz" in line and "drop" in line.lower()]
        notes.append(
            f"distro log lines about drops: {len(drop_lines)}"
            + "".join(f"\n      {line[:160]}" for line in drop_lines[:5])
        )
        other = [
            line
            for line in log.splitlines()
            if ("WARNING" in line or "ERROR" in line)
            and "Exception in ASGI" not in line
            and "otel_gatewayz" not in line
        ]
        notes.append(
            f"other WARNING/ERROR lines in the gateway log: {len(other)}"
            + "".join(f"\n      {line[:160]}" for line in other[:5])
        )
    finally:
        sinks.set_mode("sentry", "ok")
        refused.close()
    pace = f"paced at {args.rps:g} req/s" if args.rps else "back to back"
    print_table(
        results,
        f"Fault run: {config.label}, {faults.describe()} vs healthy "
        f"({args.requests} chat / {args.error_requests} error requests, {pace}, at most "
        f"{args.concurrency} in flight)",
    )
    print(f"\nFaulty vs healthy ({faults.describe()})")
    for route in ROUTES:
        healthy = _find(results, config.key, route)
        faulty = next((m for m in results if m.route == route and m.faults != "healthy"), None)
        if healthy and faulty:
            print(
                f"  {route:<7} p50 {faulty.p50_ms:7.2f} vs {healthy.p50_ms:7.2f} ms "
                f"({faulty.p50_ms / healthy.p50_ms:.2f}x)"
                f"   p99 {faulty.p99_ms:7.2f} vs {healthy.p99_ms:7.2f} ms ({faulty.p99_ms / healthy.p99_ms:.2f}x)"
                f"   CPU {faulty.cpu_ms:.3f} vs {healthy.cpu_ms:.3f} ms/req   RSS {faulty.rss_mb:.1f} vs "
                f"{healthy.rss_mb:.1f} MB   statuses {_statuses(faulty)}"
            )
    for note in notes:
        print("  " + note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=None, help="requests per route per configuration")
    parser.add_argument(
        "--error-requests",
        type=int,
        default=None,
        help="requests on the error route (default: half of --requests; an error costs 10x a request with Sentry on)",
    )
    parser.add_argument("--quick", action="store_true", help="300 requests, 100 warm-up: a smoke run")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests (default 300)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument(
        "--rps",
        type=float,
        default=None,
        help="pace the load: start this many requests a second (still at most --concurrency in "
        "flight) instead of back to back; measures latency below saturation",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every configuration this many times, interleaved; a target is the median of the "
        "ratios taken within each round (this machine's CPU/request drifts by 10-20%% between runs)",
    )
    parser.add_argument("--no-scenarios", dest="scenarios", action="store_false", help="skip the mix and storm loads")
    parser.add_argument("--huge-locals", action="store_true", help="an error with a huge local vs a small one")
    parser.add_argument("--memory", action="store_true", help=f"RSS growth over {MEMORY_REQUESTS:,} requests")
    parser.add_argument(
        "--spend", action="store_true", help="the spend accounting's CPU on a streamed relay chat (with vs without)"
    )
    parser.add_argument("--memory-config", default="ours-100", choices=list(CONFIGS))
    parser.add_argument(
        "--memory-slow", action="store_true", help=f"memory run: 1 request in 10 waits {harness.SLOW_SECONDS:g} s"
    )
    parser.add_argument(
        "--sentry-mode",
        choices=["ok", "refuse", "hang", "500", "429"],
        default="ok",
        help="fault run: what the Sentry endpoint does",
    )
    parser.add_argument("--collector-down", action="store_true", help="fault run: the OTLP endpoint refuses")
    parser.add_argument("--fault-config", default="ours-100", choices=[k for k in CONFIGS if k.startswith("ours")])
    args = parser.parse_args()
    if args.requests is None:
        args.requests = 300 if args.quick else 2000
    if args.error_requests is None:
        args.error_requests = max(1, args.requests // 2)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.warmup is None:
        args.warmup = 100 if args.quick else 300

    harness.RPS = args.rps
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; expected some of {list(CONFIGS)}")
    if "none" not in keys:
        keys.insert(0, "none")

    workdir = Path(tempfile.mkdtemp(prefix="ogz-bench-"))
    print(
        f"otel_gatewayz benchmark: {args.requests} chat / {args.error_requests} error requests, "
        f"{args.concurrency} in flight, logs in {workdir}",
        file=sys.stderr,
        flush=True,
    )
    print(f"measuring otel_gatewayz at {harness.code_state()}", flush=True)
    for peer in {CONFIGS[k].kind for k in keys} & set(harness.venvs.PEERS):
        harness.venvs.ensure_venv(peer)
    sinks = Sinks()
    provider = Provider(workdir)
    try:
        if args.sentry_mode != "ok" or args.collector_down:
            fault_run(args, provider, sinks, workdir)
            return
        if args.huge_locals:
            huge_locals_run(args, provider, sinks, workdir)
            return
        if args.spend:
            spend_run(args, provider, sinks, workdir)
            return
        if args.memory:
            growth = memory_run(args, provider, sinks, workdir)
            print_targets([], growth)
            return
        rounds = []
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f" round {number} of {args.rounds}", file=sys.stderr, flush=True)
            rounds.append(run_configs(keys, args, provider, sinks, workdir))
        pace = f"paced at {args.rps:g} req/s" if args.rps else "back to back"
        medians = f", the median round by CPU of {args.rounds}" if args.rounds > 1 else ""
        print_table(
            median_results(rounds),
            f"otel_gatewayz benchmark: {args.requests} chat / {args.error_requests} error "
            f"requests, {pace}, at most "
            f"{args.concurrency} in flight, {harness.os.cpu_count()} CPUs, example gateway + "
            f"stub provider on loopback{medians}",
        )
        print_targets(rounds, None)
    finally:
        provider.close()
        sinks.close()


if __name__ == "__main__":
    main()
