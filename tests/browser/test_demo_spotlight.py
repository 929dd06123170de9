"""The demo as a newcomer runs it: scripts/demo.sh (every port set by its DEMO_* variables)
starts the instrumented example gateway and Spotlight, installed from
tools/spotlight/package-lock.json; headless Chromium then shows, on the rendered Spotlight UI,
the error (type and message) and the chat request's trace with its http.client span. Also:
without Node.js the demo runs and says so, and a Spotlight that cannot start is reported.

Screenshots of every page asserted on stay in the test's tmp dir (``errors.png``,
``error.png``, ``trace.png``) and are named in the failure message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import auth, chat, new_traceparent
from tests.servers.browser import Browser, BrowserMissing
from tests.servers.demo import Demo
from tests.servers.npm import NpmInstallFailed
from tests.servers.ports import RefusedPort

pytestmark = pytest.mark.e2e

# Spotlight's UI loads, connects to its sidecar's event stream and renders: slow on a loaded
# 2-core machine, so each wait polls for up to a minute.
WAIT_MS = 60_000


@pytest.fixture
def demo_factory(tmp_path: Path) -> Iterator[Callable[..., Demo]]:
    started: list[Demo] = []

    def start(**kwargs: Any) -> Demo:
        demo = Demo(tmp_path / f"demo-{len(started)}", **kwargs)
        started.append(demo)
        try:
            return demo.start()
        except NpmInstallFailed as err:
            pytest.fail(str(err), pytrace=False)

    yield start
    for demo in started:
        demo.stop()


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


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (read from /proc, no traffic)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    raw = bytes.fromhex(address)
                    if width == 8:
                        found.add(".".join(str(b) for b in reversed(raw)))
                    else:
                        found.add("::1" if raw == bytes(15) + b"\x01" else raw.hex())
    return found


def _provider_error(demo: Demo, message: str | None = None) -> httpx.Response:
    params = {"message": message} if message else None
    return httpx.get(f"{demo.gateway_url}/v1/errors/provider", params=params, headers=auth(), timeout=30)


def test_spotlight_shows_the_error_and_the_trace_with_its_http_client_span(
    demo_factory: Callable[..., Demo], browser: Browser
) -> None:
    demo = demo_factory()
    output = demo.output()
    # The demo says where everything is, on the ports it was given.
    assert f"Spotlight: {demo.spotlight_ui}" in output, output
    assert f"log: {demo.log_dir / 'spotlight.log'}" in output, output
    assert f"Gateway:   {demo.gateway_url}" in output, output
    assert f"Metrics:   {demo.metrics_url}" in output, output
    assert f"sidecar at http://127.0.0.1:{demo.spotlight_port}/stream" in output, output
    # Spotlight shows users' errors and requests: it listens on loopback only.
    assert _listening_addresses(demo.spotlight_port) == {"127.0.0.1"}

    message = f"OpenRouter API timeout after 30s (browser test {secrets.token_hex(4)})"
    error = _provider_error(demo, message)
    assert error.status_code == 500
    event_id = error.json()["error"]["event_id"]
    header, trace_id, _ = new_traceparent()
    assert chat(demo.gateway_url, headers={"traceparent": header}).status_code == 200
    upstream = f"POST {demo.provider_url}/v1/chat/completions"
    ui = demo.spotlight_ui

    result = browser.run(
        [
            # Errors: as a user gets there, from the start page's sidebar.
            {"goto": f"{ui}/", "timeout": WAIT_MS},
            {"click": "Errors", "timeout": WAIT_MS},
            {"wait": ["ProviderAPIError", message, event_id[:8]], "timeout": WAIT_MS},
            {"snapshot": "errors"},
            {"click": message, "timeout": WAIT_MS},
            {"wait": [message], "timeout": WAIT_MS},
            {"snapshot": "error"},
            # Traces: the chat request's trace (the caller's trace id) and its spans.
            {"goto": f"{ui}/telemetry/traces", "timeout": WAIT_MS},
            # The list shows the method and the route as separate badges.
            {"wait": [trace_id[:8], "/v1/chat/completions"], "timeout": WAIT_MS},
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
    _shows(trace, trace_id, "http.server", "POST", "/v1/chat/completions", "http.client", upstream)
    assert not result["failures"], result["failures"]
    # Spotlight answered every request (hono 4.13.19 failed them all with this error).
    spotlight_log = (demo.log_dir / "spotlight.log").read_text()
    assert "toString is not a function" not in spotlight_log
    assert "Internal Server Error" not in errors["text"] + trace["text"]


def _path_without_node(bin_dir: Path) -> str:
    """A PATH with every program of the current one but node, npm and npx."""
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = bin_dir / name
            if name in {"node", "nodejs", "npm", "npx"} or link.exists() or link.is_symlink():
                continue
            link.symlink_to(Path(directory) / name)
    return str(bin_dir)


def test_without_node_the_demo_runs_and_says_so(demo_factory: Callable[..., Demo], tmp_path: Path) -> None:
    demo = demo_factory(path=_path_without_node(tmp_path / "bin"))

    output = demo.output()
    assert "Node.js/npm not found: running without Spotlight" in output, output
    assert "Spotlight:" not in output
    error = _provider_error(demo)
    assert error.status_code == 500
    assert error.json()["error"]["type"] == "internal_error"
    assert httpx.get(demo.metrics_url, timeout=10).status_code == 200


def test_a_spotlight_that_cannot_start_is_reported_and_the_demo_goes_on(
    demo_factory: Callable[..., Demo],
) -> None:
    with RefusedPort() as taken:  # bound by us: Spotlight cannot listen there
        demo = demo_factory(spotlight_port=taken.port)

        output = demo.output()
        log = demo.log_dir / "spotlight.log"
        assert f"demo: ERROR: Spotlight did not start; continuing without it. Last lines of {log}:" in output, output
        assert "in use" in output  # the tail of Spotlight's own log says why
        assert "Spotlight:" not in output
        assert "sentry=off" in output  # nothing is sent to a viewer that is not there
        assert _provider_error(demo).status_code == 500
