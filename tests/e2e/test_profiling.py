"""SENTRY_PROFILES_SAMPLE_RATE starts Sentry's continuous profiler in sampled processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers.gateway import REPO_ROOT, base_env

pytestmark = pytest.mark.e2e


def _run(recorder, rate: str, tmp_path) -> None:
    env = {
        **base_env(),
        "SENTRY_DSN": recorder.dsn,
        "SENTRY_PROFILES_SAMPLE_RATE": rate,
        "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
        "PYTHONPATH": str(REPO_ROOT),
        "RELEASE_SHA": "abc",
    }
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests/e2e/profiling_app.py"), "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr


def test_profiles_are_sent_when_the_rate_samples_the_process(sentry_recorder, tmp_path):
    _run(sentry_recorder, "1.0", tmp_path)
    chunks = [item.json() for item in sentry_recorder.items("profile_chunk")]
    assert chunks
    assert chunks[0]["release"] == "gatewayz-api@abc"
    assert chunks[0]["profile"]["samples"]


def test_no_profiles_at_rate_zero(sentry_recorder, tmp_path):
    _run(sentry_recorder, "0", tmp_path)
    assert sentry_recorder.items("profile_chunk") == []
