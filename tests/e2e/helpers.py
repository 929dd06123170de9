"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")
SHA = "4322aec1234567890abcdef0123456789abcdef0"
# The example's chat routes: the openai SDK's (the main one) and the plain-httpx relay.
CHAT_PATH = "/v1/chat/completions"
RAW_CHAT_PATH = "/v1/raw/chat/completions"


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer gw_{user}"}


def new_traceparent() -> tuple[str, str, str]:
    """``(header, trace_id, parent_span_id)`` for a sampled W3C caller."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def chat(
    base_url: str, user: str = "alice", timeout: float = 30.0, path: str = CHAT_PATH, **body: Any
) -> httpx.Response:
    """POST a chat to the example gateway: through the openai SDK by default, ``path=RAW_CHAT_PATH`` for plain httpx."""
    headers = {**auth(user), **body.pop("headers", {})}
    payload = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(f"{base_url}{path}", json=payload, headers=headers, timeout=timeout)


def build_stack(name: str) -> Path:
    """The bin directory of a provider-SDK stack venv (``scripts/build-stack.sh``: built once, then cached)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "build-stack.sh"
    out = subprocess.run(["bash", str(script), name], capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        pytest.fail(f"stack {name} could not be built:\n{out.stderr[-3000:]}", pytrace=False)
    return Path(out.stdout.strip().splitlines()[-1])


def eventually(probe: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def tags_of(event: dict[str, Any]) -> dict[str, str]:
    """Sentry sends tags as a dict; stored events may keep them as ``[key, value]`` pairs."""
    tags = event.get("tags") or {}
    return dict(tags) if isinstance(tags, dict) else {k: v for k, v in tags}


def crumbs_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    crumbs = event.get("breadcrumbs") or []
    return list(crumbs["values"] if isinstance(crumbs, dict) else crumbs)


def run_cli(bin_dir: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([f"{bin_dir}/otel-gatewayz", *args], env=env, capture_output=True, text=True, timeout=60)


def leak_env(sentry_dsn: str, otlp_endpoint: str) -> dict[str, str]:
    """A gateway sending every signal at once and quickly (Sentry, OTLP spans, metrics, logs): for leak scans."""
    return {
        "SENTRY_DSN": sentry_dsn,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "RELEASE_SHA": SHA,
        "APP_ENV": "staging",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    }


def everything_that_left(gateway: Any, sentry_recorder: Any, otlp_recorder: Any) -> bytes:
    """Every byte that left the gateway: decompressed Sentry envelopes, OTLP bodies, /metrics, its logs."""
    return b"\n".join(
        [
            sentry_recorder.all_bytes(),
            *otlp_recorder.raw_bodies(),
            httpx.get(gateway.metrics_url).content,
            gateway.logs().encode(),
        ]
    )
