"""The spec's examples work with only the import changed, under a programmatic configure()."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.helpers import SHA, crumbs_of, tags_of
from tests.servers.gateway import REPO_ROOT, base_env

pytestmark = pytest.mark.e2e


def test_spec_examples_against_a_sentry_endpoint(sentry_recorder, tmp_path):
    env = {
        **base_env(),
        "SENTRY_DSN": sentry_recorder.dsn,
        "RELEASE_SHA": SHA,
        "APP_ENV": "production",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
        "PYTHONPATH": str(REPO_ROOT),
    }
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests/e2e/spec_examples_app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    ids = json.loads(run.stdout)
    assert "Overriding of current TracerProvider is not allowed" not in run.stderr
    assert run.stderr.count("Sentry initialized successfully") == 1

    events = {e["event_id"]: e for e in sentry_recorder.wait_for_events(3)}
    manual = events[ids["manual"]]
    assert manual["release"] == f"gatewayz-api@{SHA}" and manual["environment"] == "production"
    assert manual["fingerprint"] == ["ProviderAPIError", "provider_error"]
    assert manual["user"] == {
        "id": "user_123",
        "email": "user@example.com",
        "api_key_id": "7",
        "credits": 1000,
        "plan": "pro",
        "posthog_session_id": "ph-session-1",
    }
    tags = tags_of(manual)
    assert (tags["error_type"], tags["model"], tags["provider"], tags["user_impact"], tags["service"]) == (
        "provider_timeout",
        "gpt-4",
        "openrouter",
        "low",
        "gatewayz-api",
    )
    assert manual["contexts"]["error_context"] == {"provider": "openrouter", "model": "gpt-4"}
    assert manual["contexts"]["request"]["stream"] is True
    assert [c["message"] for c in crumbs_of(manual)] == ["Chat completion request started", "Rate limit check passed"]
    assert manual["contexts"]["trace"]["trace_id"]

    [payment] = [e for e in events.values() if tags_of(e).get("operation") == "process_payment"]
    arguments = payment["contexts"]["error_context"]["arguments"]
    assert arguments["user_id"] == "'user_123'" and arguments["amount"] == 12.5
    assert "4111" not in json.dumps(payment)

    message = events[ids["message"]]
    assert (message.get("message") or message["logentry"]["message"]) == "Test error from Gatewayz API"
