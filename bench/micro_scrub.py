"""Micro-benchmark of the scrubber on what the gateway really feeds it (profile follow-up).

    python bench/micro_scrub.py [--baseline GIT_REV]

The profiles (``profile_app.py``) show ``Scrubber.scrub_text`` as the hottest function of ours
on the error path. This times it, per call, on the inputs the request path produces:

* ``traceback``: the traceback text of the example app's provider error, raised through the
  real FastAPI/Starlette stack in-process (the log-record factory formats and scrubs such a
  text for uvicorn's "Exception in ASGI application" line, and ``exception.stacktrace`` carries
  one on the span event);
* ``event``: the Sentry error event sentry-sdk builds for that exception
  (``event_from_exception``: frames with source context and local variables), as
  ``_before_send`` receives it, scrubbed with ``scrub_event``;
* ``span attrs``: the attributes of the chat route's server span and a breadcrumb event;

* ``span``: a whole span through ``scrub_span`` (what the exporter wrapper does per span): the
  chat route's server span with its breadcrumb event, and the error route's span with its
  exception event (``exception.message`` + ``exception.stacktrace``);

and splits ``scrub_text`` on the traceback into its passes (the literal gate, key=value pairs,
each value rule the gate lets run), so a fix can aim at the costly one.

``--baseline REV`` also times the scrubber of ``otel_gatewayz/_scrub.py`` at git ``REV`` on the
same inputs in the same process (a before/after on one machine, one moment), uncached texts
included: the memo hides the rule set's cost for repeated texts, new texts pay it.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import timeit
import types
from pathlib import Path
from typing import Any

import sentry_sdk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.utils import event_from_exception

from otel_gatewayz._privacy.events import scrub_event
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz._privacy.spans import scrub_span

ROOT = Path(__file__).resolve().parents[1]


def _per_call_us(func: Any, number: int) -> float:
    """Best of 5, in CPU time of this process: the 2 cores are shared, wall time would count waiting."""
    best = min(timeit.repeat(func, number=number, repeat=5, timer=time.process_time))
    return best / number * 1e6


def _app_error() -> BaseException:
    """The example app's provider error, raised through the real FastAPI/Starlette stack in-process."""
    import asyncio

    import httpx

    sys.path.insert(0, str(ROOT))
    from examples.gateway.app import app

    async def call() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            await client.get("/v1/errors/provider", headers={"Authorization": "Bearer gw_bench"})

    try:
        asyncio.run(call())
    except Exception as exc:  # noqa: BLE001 - that is the point
        return exc
    raise AssertionError("the route did not raise")


def _baseline_scrubber(rev: str) -> Any:
    """The Scrubber at git ``rev`` (a self-contained module there: ``_scrub.py``, later ``_privacy/scrubber.py``)."""
    for path in ("otel_gatewayz/_scrub.py", "otel_gatewayz/_privacy/scrubber.py"):
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0 and "from ." not in shown.stdout:
            source = shown.stdout
            break
    else:
        raise SystemExit(f"no self-contained scrubber module at {rev}")
    module = types.ModuleType("baseline_scrub")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:_scrub.py", "exec"), module.__dict__)
    return module.Scrubber()


def _spans(attrs: dict[str, Any], crumb: dict[str, Any], exc: BaseException) -> list[Any]:
    """The chat route's server span (with a breadcrumb event) and the error route's (with the exception)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    with tracer.start_as_current_span("POST /v1/chat/completions", attributes=attrs) as span:
        span.add_event("breadcrumb", crumb)
    with tracer.start_as_current_span(
        "GET /v1/errors/provider", attributes=attrs, record_exception=False, set_status_on_exception=False
    ) as span:
        span.add_event("breadcrumb", crumb)
        span.record_exception(exc)
    return list(exporter.get_finished_spans())


def _rows(
    scrubber: Any, text: str, event: dict[str, Any], attrs: dict[str, Any], crumb: dict[str, Any], spans: list[Any]
) -> list[tuple[str, Any, int]]:
    counter = iter(range(10**9))
    return [
        ("scrub_text(traceback)", lambda: scrubber.scrub_text(text), 200),
        ("scrub_text(traceback), first line never seen", lambda: scrubber.scrub_text(f"{next(counter)} {text}"), 100),
        ("scrub_event(Sentry error event)", lambda: scrub_event(event, scrubber), 50),
        ("scrub(server span attributes)", lambda: scrubber.scrub(attrs), 2000),
        ("scrub(breadcrumb event attributes)", lambda: scrubber.scrub(crumb), 5000),
        ("scrub_span(chat span + breadcrumb)", lambda: scrub_span(spans[0], scrubber), 2000),
        ("scrub_span(error span + exception event)", lambda: scrub_span(spans[1], scrubber), 200),
    ]


def _compare(runtimes: list[tuple[str, Any]], rows: dict[str, list[tuple[str, Any, int]]], rounds: int) -> None:
    """Each row timed for each scrubber in turn, ``rounds`` times; the best of all rounds is kept."""
    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for label, _scrubber in runtimes:
            for name, func, number in rows[label]:
                took = _per_call_us(func, number)
                best[(label, name)] = min(best.get((label, name), took), took)
    labels = [label for label, _ in runtimes]
    print(f"  {'us/call (CPU, best of ' + str(rounds) + ' rounds x 5)':<46}" + "".join(f"{lb:>22}" for lb in labels))
    for name, _func, _number in rows[labels[0]]:
        print(f"  {name:<46}" + "".join(f"{best[(lb, name)]:22.1f}" for lb in labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="GIT_REV", help="also time the scrubber at this git revision")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (noisy shared machines)")
    args = parser.parse_args()
    sentry_sdk.init(dsn=None, include_local_variables=True)
    started = time.perf_counter()
    scrubber = Scrubber()
    built_ms = (time.perf_counter() - started) * 1e3
    exc = _app_error()
    text = logging.Formatter().formatException((type(exc), exc, exc.__traceback__))
    client_options = sentry_sdk.get_client().options
    event, _ = event_from_exception((type(exc), exc, exc.__traceback__), client_options=client_options)
    attrs = {
        "http.request.method": "POST",
        "url.scheme": "http",
        "http.route": "/v1/chat/completions",
        "url.path": "/v1/chat/completions",
        "client.address": "127.0.0.1",
        "client.port": 51234,
        "user_agent.original": "python-httpx/0.28.1",
        "http.response.status_code": 200,
        "user.id": "bench",
        "gatewayz.user.api_key_id": "1234",
        "gatewayz.user.credits": 1000,
        "gatewayz.user.plan": "pro",
        "gatewayz.request.endpoint": "/v1/chat/completions",
        "gatewayz.request.method": "POST",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openrouter",
        "gatewayz.stream": False,
    }
    crumb = {
        "gatewayz.breadcrumb.category": "provider",
        "gatewayz.breadcrumb.level": "info",
        "gatewayz.breadcrumb.data.provider": "openrouter",
        "gatewayz.breadcrumb.data.model": "gpt-4o-mini",
    }
    spans = _spans(attrs, crumb, exc)

    frames = sum(len((e.get("stacktrace") or {}).get("frames") or []) for e in event["exception"]["values"])
    print(
        f"inputs: traceback {len(text)} chars / {text.count(chr(10))} lines; Sentry event with {frames} frames, "
        f"{len(json.dumps(event, default=str))} chars of JSON; span attributes {len(attrs)} keys"
    )
    print(
        f"rule set: {scrubber.rules_source}, {len(scrubber.rules)} rules; runtime built in {built_ms:.0f} ms "
        "(rules loaded and compiled once per process)"
    )
    runtimes: list[tuple[str, Any]] = [("current", scrubber)]
    if args.baseline:
        runtimes.insert(0, (f"baseline {args.baseline}", _baseline_scrubber(args.baseline)))
    _compare(runtimes, {label: _rows(r, text, event, attrs, crumb, spans) for label, r in runtimes}, args.rounds)

    print("scrub_text(traceback), pass by pass:")
    lowered = text.lower()
    found = {m.group(1) for m in scrubber._gate.finditer(lowered)}
    triggered = sorted({a for lit in found for a in scrubber._actions[lit] if a >= 0} | set(scrubber._always))
    passes = [
        ("whole text, uncached (_clean)", lambda: scrubber._clean(text)),
        ("lower()", lambda: text.lower()),
        ("literal gate (one trie pass)", lambda: list(scrubber._gate.finditer(lowered))),
        (
            "key=value pairs at the gate's key hits",
            lambda: scrubber._pairs(
                text, [m.start() for m in scrubber._gate.finditer(lowered) if -1 in scrubber._actions[m.group(1)]]
            ),
        ),
    ]
    for name, func in passes:
        print(f"  {name:<44} {_per_call_us(func, 200):9.1f} us/call")
    print(f"  gate literals found: {sorted(found)}")
    for i in triggered:
        compiled = scrubber._compiled[i]
        print(
            f"    rule {compiled.rule.name:<40} {_per_call_us(lambda c=compiled: c.regex.sub('', text), 200):9.1f} "
            "us/call"
        )
    print(f"  traceback has '%' or '+': {'%' in text or '+' in text} (then scrub_text runs twice)")

    # Where scrub_event's time goes: the frames' source context (pre_context, context_line,
    # post_context) is the app's and the libraries' source code, the same lines in every event of
    # a route; the rest is local variables and the exception's message.
    source = _source_lines(event)
    print(
        f"scrub_event: {len(source)} source-context lines ({len(set(source))} distinct, the same in every event "
        f"of this route)"
    )
    print(
        f"  scrub_text over those lines                  "
        f"{_per_call_us(lambda: [scrubber.scrub_text(line) for line in source], 50):9.1f} us/event"
    )


def _source_lines(event: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for value in event["exception"]["values"]:
        for frame in (value.get("stacktrace") or {}).get("frames") or []:
            found += frame.get("pre_context") or []
            found += [frame["context_line"]] if frame.get("context_line") else []
            found += frame.get("post_context") or []
    return found


if __name__ == "__main__":
    main()
