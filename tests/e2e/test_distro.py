"""Issue 2 end to end: the example app under ``opentelemetry-instrument uvicorn``, real servers.

Which requests send Sentry a transaction at rate 0 is checked in-process: tests/unit/test_error_flow.py.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.helpers import SHA, auth, chat, eventually, new_traceparent, run_cli
from tests.servers.gateway import base_env, venv_bin

pytestmark = pytest.mark.e2e


def test_error_event_carries_release_environment_and_callers_trace(bugsink, gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": bugsink.dsn, "RELEASE_SHA": SHA, "APP_ENV": "production"})
    header, trace_id, _ = new_traceparent()

    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers={**auth(), "traceparent": header})

    assert response.status_code == 500
    event_id = response.json()["error"]["event_id"]
    assert event_id
    [event] = bugsink.wait_for_events(1)
    assert event["event_id"].replace("-", "") == event_id.replace("-", "")
    assert event["release"] == f"gatewayz-api@{SHA}"
    assert event["environment"] == "production"
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    # Exactly one event: the SDK's own capture of the re-raised exception is deduplicated.
    httpx.get(f"{gateway.base_url}/health")
    assert bugsink.event_count() == 1


def test_sentry_trace_header_alone_continues_the_callers_trace(sentry_recorder, gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": sentry_recorder.dsn, "SENTRY_TRACES_SAMPLE_RATE": "0"})
    trace_id = "a" * 31 + "1"

    httpx.get(f"{gateway.base_url}/v1/errors/unique", headers={**auth(), "sentry-trace": f"{trace_id}-{'b' * 16}-1"})

    [event] = sentry_recorder.wait_for_events(1)
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    # The caller sampled it, so the transaction is sent despite our rate of 0.
    [transaction] = sentry_recorder.wait_for_transactions(1)
    assert transaction["contexts"]["trace"]["trace_id"] == trace_id
    assert transaction["contexts"]["trace"]["parent_span_id"] == "b" * 16


def test_sampled_request_becomes_a_transaction_with_the_provider_call(sentry_recorder, gateway_factory):
    gateway = gateway_factory(
        env={"SENTRY_DSN": sentry_recorder.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0", "RELEASE_SHA": SHA}
    )
    assert httpx.get(f"{gateway.base_url}/health").status_code == 200
    header, trace_id, parent = new_traceparent()

    assert chat(gateway.base_url, headers={"traceparent": header}).status_code == 200

    [transaction] = sentry_recorder.wait_for_transactions(1)
    assert transaction["transaction"] == "POST /v1/chat/completions"
    assert transaction["transaction_info"] == {"source": "route"}
    assert transaction["release"] == f"gatewayz-api@{SHA}"
    trace = transaction["contexts"]["trace"]
    assert (trace["op"], trace["status"], trace["trace_id"], trace["parent_span_id"]) == (
        "http.server",
        "ok",
        trace_id,
        parent,
    )
    [client] = [span for span in transaction["spans"] if span["op"] == "http.client"]
    assert client["description"] == f"POST {gateway.provider_url}/v1/chat/completions"
    assert client["parent_span_id"] == trace["span_id"]
    assert client["status"] == "ok"
    assert transaction["user"]["id"] == "alice"
    # /health is never traced, so it made no transaction.
    assert all("/health" not in t["transaction"] for t in sentry_recorder.transactions())


def test_prometheus_server_sees_route_metrics_with_resource_labels(gateway_factory, prometheus_factory):
    gateway = gateway_factory(env={"RELEASE_SHA": SHA, "APP_ENV": "staging", "SERVICE_NAME": "gw-test"})
    for _ in range(3):
        assert chat(gateway.base_url).status_code == 200
    prometheus = prometheus_factory([f"127.0.0.1:{gateway.metrics_port}"])

    expr = (
        'http_server_request_duration_seconds_count{http_route="/v1/chat/completions",'
        f'service_name="gw-test",deployment_environment_name="staging",service_version="{SHA}"}}'
    )
    result = prometheus.wait_for_query(expr, lambda r: bool(r) and float(r[0]["value"][1]) == 3)
    assert len(result) == 1
    client = prometheus.wait_for_query(f'http_client_request_duration_seconds_count{{service_version="{SHA}"}}')
    assert float(client[0]["value"][1]) == 3
    # Every series the app exposes carries the three resource labels.
    series = prometheus.query('{job="gateway", __name__!~"up|scrape_.*"}')
    assert series
    for item in series:
        labels = item["metric"]
        assert (
            labels.get("service_name"),
            labels.get("deployment_environment_name"),
            labels.get("service_version"),
        ) == ("gw-test", "staging", SHA), labels


def test_bad_settings_leave_the_app_serving_and_name_the_variable(gateway_factory):
    gateway = gateway_factory(
        env={
            "SENTRY_DSN": "https://not a dsn",
            "SENTRY_TRACES_SAMPLE_RATE": "abc",
            "SENTRY_PROFILES_SAMPLE_RATE": "1.5",
        }
    )

    assert chat(gateway.base_url).status_code == 200
    assert httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth()).status_code == 500

    logs = eventually(lambda: gateway.logs() if "SENTRY_PROFILES_SAMPLE_RATE" in gateway.logs() else None)
    assert "SENTRY_DSN: malformed DSN" in logs
    assert "not a dsn" not in logs
    assert "SENTRY_TRACES_SAMPLE_RATE: 'abc' is not a number between 0 and 1; tracing is disabled" in logs
    assert "SENTRY_PROFILES_SAMPLE_RATE: '1.5' is outside 0..1" in logs
    assert "Sentry initialized successfully" not in logs


def test_doctor_sends_the_test_message_and_fails_on_a_bad_dsn(bugsink, refused_dsn):
    bin_dir = str(venv_bin())
    env = {**base_env(), "SENTRY_DSN": bugsink.dsn, "RELEASE_SHA": SHA}

    ok = run_cli(bin_dir, ["doctor"], env)

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"gatewayz-api@{SHA}" in ok.stdout
    assert bugsink.dsn.split("@")[0].split("//")[1] not in ok.stdout  # the key is never printed
    [event] = bugsink.wait_for_events(1)
    assert (event.get("message") or event["logentry"]["message"]) == "Test error from Gatewayz API"
    assert event["level"] == "info"

    malformed = run_cli(bin_dir, ["doctor"], {**env, "SENTRY_DSN": "nonsense"})
    assert malformed.returncode == 1
    assert "SENTRY_DSN: malformed DSN" in malformed.stdout
    unreachable = run_cli(bin_dir, ["doctor"], {**env, "SENTRY_DSN": refused_dsn})
    assert unreachable.returncode == 1
    assert "not accepted" in unreachable.stdout

    release = run_cli(bin_dir, ["release"], env)
    assert release.stdout.strip() == f"gatewayz-api@{SHA}"


UNSUPPORTED_SENTRY_SDK = "2.30.0"  # older than the supported range: what a lock file may still hold


def test_an_unsupported_sentry_sdk_is_named_once_and_otel_keeps_working(otlp_recorder, sentry_recorder, tmp_path):
    from tests.servers.gateway import Gateway
    from tests.servers.overlay import overlay_venv

    bin_dir = overlay_venv(f"sentry-sdk=={UNSUPPORTED_SENTRY_SDK}")
    env = {
        "SENTRY_DSN": sentry_recorder.dsn,
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
        "RELEASE_SHA": SHA,
    }
    with Gateway(tmp_path / "gateway", env=env, bin_dir=bin_dir) as gateway:
        assert chat(gateway.base_url).status_code == 200
        error = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())
        assert error.status_code == 500 and error.json()["error"]["event_id"] is None  # no Sentry, still handled
        # OpenTelemetry keeps working: traces exported, metrics counted on /metrics.
        spans = eventually(lambda: otlp_recorder.spans() if len(otlp_recorder.spans()) >= 3 else None)
        routes = {s["attributes"].get("http.route") for s in spans}
        assert {"/v1/chat/completions", "/v1/errors/{kind}"} <= routes
        metrics = httpx.get(gateway.metrics_url).text
        assert "gatewayz_errors_total{" in metrics
        logs = gateway.logs()
    line = f"sentry-sdk {UNSUPPORTED_SENTRY_SDK} is outside the supported range >=2.75,<4"
    assert logs.count(line) == 1, logs
    assert "Sentry is off (OpenTelemetry traces, metrics and the exception handler keep working)" in logs
    assert "Failed to auto initialize" not in logs and "configuration failed" not in logs
    assert sentry_recorder.envelopes() == []  # nothing sent through an SDK we never ran against

    doctor = run_cli(str(bin_dir), ["doctor"], {**base_env(bin_dir), "SENTRY_DSN": sentry_recorder.dsn})
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert line in doctor.stdout and doctor.stdout.rstrip().endswith("FAILED")


def test_a_metrics_port_taken_by_another_program_is_one_warning_naming_it(tmp_path, gateway_factory):
    """A single-process server whose /metrics port another program holds: said once, by variable and holder."""
    import subprocess
    import sys

    from tests.servers.ports import LOOPBACK, free_port

    port = free_port()
    squatter = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool | None:
            try:
                return httpx.get(f"http://{LOOPBACK}:{port}/").status_code == 200 or None
            except httpx.HTTPError:
                return None

        eventually(listening, what="the squatter")
        gateway = gateway_factory(
            env={"OTEL_EXPORTER_PROMETHEUS_HOST": LOOPBACK, "OTEL_EXPORTER_PROMETHEUS_PORT": str(port)}
        )
        assert chat(gateway.base_url).status_code == 200
        warning = f"OTEL_EXPORTER_PROMETHEUS_PORT: 127.0.0.1:{port} is taken by pid {squatter.pid}"
        logs = eventually(lambda: gateway.logs() if warning in gateway.logs() else None, what="the warning")
    finally:
        squatter.terminate()
        squatter.wait(10)
    [line] = [line for line in logs.splitlines() if warning in line]
    assert line.startswith("WARNING") and "http.server" in line and "no worker of this server serves /metrics" in line
    assert "presumably" not in logs and "sibling" not in logs
