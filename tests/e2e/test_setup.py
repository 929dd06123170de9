"""The setup under ``opentelemetry-instrument uvicorn``: a bad value disables only its part; the SDK's path runs.

Each garbage value here was seen to turn the whole distro off (no handler, no event ids, no
``/metrics``) before settings were validated one by one.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import auth, chat, eventually

pytestmark = pytest.mark.e2e


def _serves_with_error_ids(gateway, sentry_recorder) -> None:
    assert chat(gateway.base_url).status_code == 200
    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())
    assert response.status_code == 500
    event_id = response.json()["error"]["event_id"]
    assert event_id, "the exception handler is installed and Sentry is on"
    events = sentry_recorder.wait_for_events(1)
    assert [e["event_id"].replace("-", "") for e in events] == [event_id.replace("-", "")]


@pytest.mark.parametrize(
    ("variable", "garbage", "line", "metrics_served"),
    [
        (
            "OTEL_EXPORTER_PROMETHEUS_PORT",
            "99999",
            "'99999' is outside 1..65535; the Prometheus endpoint is disabled",
            False,
        ),
        (
            "GATEWAYZ_METRICS_DIR",
            "/etc/hostname/metrics",
            "is not a directory; using a fresh temporary directory",
            True,
        ),
        ("GATEWAYZ_SHUTDOWN_TIMEOUT", "nan", "'nan' is not a finite number; using 5 seconds", True),
        ("OTEL_TRACES_EXPORTER", "nonsense", "unknown exporter 'nonsense'", True),
        ("OTEL_TRACES_SAMPLER", "nonsense", "is not a known sampler", True),
    ],
)
def test_a_bad_value_disables_only_its_part(gateway_factory, sentry_recorder, variable, garbage, line, metrics_served):
    gateway = gateway_factory(env={"SENTRY_DSN": sentry_recorder.dsn, variable: garbage})

    _serves_with_error_ids(gateway, sentry_recorder)
    logs = gateway.logs()
    assert f"otel_gatewayz: {variable}: " in logs and line in logs, logs[-3000:]
    assert "could not be configured" not in logs  # the SDK itself was set up
    if metrics_served:
        assert "gatewayz_errors_total" in eventually(lambda: _metrics(gateway.metrics_url), what="/metrics")
    else:
        with pytest.raises(httpx.TransportError):
            httpx.get(gateway.metrics_url, timeout=2)


def test_a_dsn_with_a_bad_port_disables_sentry_only(gateway_factory):
    gateway = gateway_factory(env={"SENTRY_DSN": "https://key@127.0.0.1:99999/1"})

    response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())
    assert response.status_code == 500
    assert response.json()["error"]["event_id"] is None  # handler installed, no Sentry
    assert "https://key@" not in gateway.logs()
    assert "otel_gatewayz: SENTRY_DSN: malformed DSN" in gateway.logs()
    assert "gatewayz_errors_total" in eventually(lambda: _metrics(gateway.metrics_url), what="/metrics")


def test_shutdown_flush_survives_a_garbage_timeout(gateway_factory, sentry_recorder):
    gateway = gateway_factory(env={"SENTRY_DSN": sentry_recorder.dsn, "GATEWAYZ_SHUTDOWN_TIMEOUT": "inf"})
    _serves_with_error_ids(gateway, sentry_recorder)

    gateway.stop()

    assert "Application shutdown complete" in gateway.logs()
    assert "Application shutdown failed" not in gateway.logs()


def test_otel_config_file_configures_the_sdk_and_keeps_our_processors(
    gateway_factory, sentry_recorder, otlp_recorder, tmp_path: Path
):
    config = tmp_path / "otel.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        file_format: "1.0"
        resource:
          attributes:
            - name: service.name
              value: from-config-file
        tracer_provider:
          processors:
            - simple:
                exporter:
                  otlp_http:
                    endpoint: {otlp_recorder.endpoint}/v1/traces
        """)
    )
    gateway = gateway_factory(env={"SENTRY_DSN": sentry_recorder.dsn, "OTEL_CONFIG_FILE": str(config)})

    _serves_with_error_ids(gateway, sentry_recorder)

    server = otlp_recorder.wait_for_span("POST /v1/chat/completions")
    assert server["resource"]["service.name"] == "from-config-file"  # the file decides the resource
    assert server["attributes"]["user.id"] == "alice"  # our context processor still runs
    logs = gateway.logs()
    assert logs.count("OTEL_CONFIG_FILE is set: the SDK is configured from that file alone") == 1
    assert "could not be configured" not in logs


def _metrics(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return response.text if response.status_code == 200 else None


def test_console_output_is_one_scrubbed_line_per_span_and_per_error(gateway_factory):
    from tests.e2e.helpers import new_traceparent

    gateway = gateway_factory(env={"GATEWAYZ_CONSOLE": "true"})  # no Sentry, no viewer
    header, trace_id, _ = new_traceparent()
    secret = "sk-proj-" + "Q7wE9rT2yU4iO6pA8sD1fG3h" * 2

    assert chat(gateway.base_url, headers={"traceparent": header}).status_code == 200
    response = httpx.get(
        f"{gateway.base_url}/v1/errors/unique", params={"message": f"bad key {secret}"}, headers=auth()
    )
    assert response.status_code == 500

    logs = eventually(lambda: gateway.logs() if "[error]" in gateway.logs() else None, what="the error line")
    assert f"[span]  {trace_id[:8]} server   POST /v1/chat/completions 200 " in logs
    assert f"[span]  {trace_id[:8]} client   POST 200 " in logs
    assert re.search(r"\[error\] [0-9a-f]{8} ValueError: bad key \[REDACTED\]  group=ValueError / .* impact=low", logs)
    assert secret not in logs


def test_no_console_output_by_default(gateway_factory):
    gateway = gateway_factory()
    assert chat(gateway.base_url).status_code == 200
    httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())
    assert "[span]" not in gateway.logs() and "[error]" not in gateway.logs()


def test_a_spotlight_that_cannot_be_reached_is_said_once(gateway_factory):
    from tests.servers.ports import RefusedPort

    with RefusedPort() as refused:
        url = f"http://127.0.0.1:{refused.port}/stream"
        gateway = gateway_factory(env={"SENTRY_SPOTLIGHT": url})
        for _ in range(3):
            response = httpx.get(f"{gateway.base_url}/v1/errors/provider", headers=auth())
            assert response.status_code == 500 and response.json()["error"]["event_id"]
        logs = eventually(
            lambda: gateway.logs() if "cannot be reached" in gateway.logs() else None, what="the Spotlight line"
        )
    assert logs.count(f"otel_gatewayz: Spotlight at {url} cannot be reached") == 1
