"""Micro-benchmark of the scrubber on what the gateway really feeds it (profile follow-up).

    python bench/micro_scrub.py

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

and splits ``scrub_text`` on the traceback into its passes (value patterns, key=value pairs,
URL userinfo, query parameters, URL-decoding re-scan), so a fix can aim at the costly one.
"""

from __future__ import annotations

import json
import logging
import sys
import timeit
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import sentry_sdk
from sentry_sdk.utils import event_from_exception

from otel_gatewayz._privacy import scrubber as _scrub
from otel_gatewayz._privacy.events import scrub_event


def _per_call_us(func: Any, number: int) -> float:
    best = min(timeit.repeat(func, number=number, repeat=5))
    return best / number * 1e6


def _app_error() -> BaseException:
    """The example app's provider error, raised through the real FastAPI/Starlette stack in-process."""
    import asyncio

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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


def main() -> None:
    sentry_sdk.init(dsn=None, include_local_variables=True)
    scrubber = _scrub.Scrubber()
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

    frames = sum(len((e.get("stacktrace") or {}).get("frames") or []) for e in event["exception"]["values"])
    print(
        f"inputs: traceback {len(text)} chars / {text.count(chr(10))} lines; Sentry event with {frames} frames, "
        f"{len(json.dumps(event, default=str))} chars of JSON; span attributes {len(attrs)} keys"
    )
    rows = [
        ("scrub_text(traceback)", lambda: scrubber.scrub_text(text), 200),
        ("scrub_event(Sentry error event)", lambda: scrub_event(event, scrubber), 200),
        ("scrub(server span attributes)", lambda: scrubber.scrub(attrs), 2000),
        ("scrub(breadcrumb event attributes)", lambda: scrubber.scrub(crumb), 5000),
    ]
    for name, func, number in rows:
        print(f"  {name:<40} {_per_call_us(func, number):9.1f} us/call")

    print("scrub_text(traceback), pass by pass:")
    passes = [
        ("whole text, uncached (_clean)", lambda: scrubber._clean(text)),
        ("key=value pairs (_PAIR)", lambda: _scrub._PAIR.sub(lambda m: m.group(0), text)),
        ("URL userinfo", lambda: _scrub._URL_USERINFO.sub(lambda m: m.group(0), text)),
        ("query parameters", lambda: _scrub._QUERY_PARAM.sub(lambda m: m.group(0), text)),
        (
            "unquote_plus (when % or + present)",
            lambda: unquote_plus(text),
        ),
    ]
    for name, func in passes:
        print(f"  {name:<40} {_per_call_us(func, 200):9.1f} us/call")
    for name, compiled, _literals in scrubber._values:
        print(f"    value pattern {name:<24} {_per_call_us(lambda c=compiled: c.sub('', text), 200):9.1f} us/call")
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
