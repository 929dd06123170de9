"""The demo as a newcomer sees it: the instrumented example gateway sends to Spotlight
(installed from tools/spotlight/package-lock.json), and headless Chromium shows, on the
rendered Spotlight UI, the error (type and message) and the chat request's trace with its
http.client span.

Screenshots of every page asserted on stay in the test's tmp dir (``errors.png``,
``error.png``, ``trace.png``) and are named in the failure message.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, chat, new_traceparent
from tests.servers.browser import Browser, BrowserMissing
from tests.servers.gateway import GatewayFactory
from tests.servers.spotlight import NpmInstallFailed, SpotlightServer

pytestmark = pytest.mark.e2e

# Spotlight's UI loads, connects to its sidecar's event stream and renders: slow on a loaded
# 2-core machine, so each wait polls for up to a minute.
WAIT_MS = 60_000


@pytest.fixture
def spotlight(tmp_path: Path) -> Iterator[SpotlightServer]:
    server = SpotlightServer(tmp_path / "spotlight")
    try:
        server.start()
    except NpmInstallFailed as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    try:
        return Browser(tmp_path)
    except (BrowserMissing, NpmInstallFailed) as err:
        pytest.fail(str(err), pytrace=False)


def _page(result: dict[str, Any], name: str) -> dict[str, Any]:
    snapshot = result["snapshots"].get(name)
    assert snapshot is not None, f"no {name!r} snapshot; failed steps {result['failures']}; console {result['console']}"
    return snapshot


def _shows(snapshot: dict[str, Any], *texts: str) -> None:
    missing = [text for text in texts if text not in snapshot["text"]]
    assert not missing, (
        f"{snapshot['url']} does not show {missing} (screenshot {snapshot['screenshot']}); it shows:\n"
        f"{snapshot['text'][:3000]}"
    )


def test_spotlight_shows_the_error_and_the_trace_with_its_http_client_span(
    spotlight: SpotlightServer, gateway_factory: GatewayFactory, browser: Browser
) -> None:
    gateway = gateway_factory(
        env={"SENTRY_SPOTLIGHT": spotlight.stream_url, "APP_ENV": "development", "RELEASE_SHA": SHA}
    )
    message = f"OpenRouter API timeout after 30s (browser test {secrets.token_hex(4)})"
    error = httpx.get(f"{gateway.base_url}/v1/errors/provider", params={"message": message}, headers=auth(), timeout=30)
    assert error.status_code == 500
    event_id = error.json()["error"]["event_id"]
    header, trace_id, _ = new_traceparent()
    assert chat(gateway.base_url, headers={"traceparent": header}).status_code == 200
    upstream = f"POST {gateway.provider_url}/v1/chat/completions"

    result = browser.run(
        [
            # Errors: as a user gets there, from the start page's sidebar.
            {"goto": f"{spotlight.ui_url}/", "timeout": WAIT_MS},
            {"click": "Errors", "timeout": WAIT_MS},
            {"wait": ["ProviderAPIError", message, event_id[:8]], "timeout": WAIT_MS},
            {"snapshot": "errors"},
            {"click": message, "timeout": WAIT_MS},
            {"wait": [message], "timeout": WAIT_MS},
            {"snapshot": "error"},
            # Traces: the chat request's trace (the caller's trace id) and its spans.
            {"goto": f"{spotlight.ui_url}/telemetry/traces", "timeout": WAIT_MS},
            {"wait": [trace_id[:8], "POST /v1/chat/completions"], "timeout": WAIT_MS},
            {"click": trace_id[:8], "timeout": WAIT_MS},
            {"wait": ["http.client", upstream, trace_id], "timeout": WAIT_MS},
            {"snapshot": "trace"},
        ]
    )

    errors = _page(result, "errors")
    _shows(errors, "ProviderAPIError", message, event_id[:8])
    details = _page(result, "error")
    assert event_id in details["url"], details["url"]
    _shows(details, "ProviderAPIError", message)
    trace = _page(result, "trace")
    assert trace_id in trace["url"], trace["url"]
    _shows(trace, trace_id, "http.server", "POST /v1/chat/completions", "http.client", upstream)
    assert not result["failures"], result["failures"]
    # Spotlight received everything over its real intake and answered it: no "Internal Server
    # Error" (the hono 4.13 breakage) and nothing logged about failed posts by the gateway.
    assert "Internal Server Error" not in errors["text"] + trace["text"]
    assert "Internal Server Error" not in spotlight.logs()
    assert "toString is not a function" not in spotlight.logs()
