"""Self-tests of the end-to-end server infrastructure (tests/servers/ and its fixtures).

Each test drives a real client (sentry-sdk, the OTLP exporter, Prometheus, uvicorn) against
the helper, so a broken helper fails here rather than as a puzzling end-to-end failure.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk.consts

from tests.servers.bugsink import BugsinkServer
from tests.servers.gateway import GatewayFactory
from tests.servers.otlp_recorder import OtlpRecorder
from tests.servers.ports import LOOPBACK, http_get
from tests.servers.prometheus import PrometheusFactory
from tests.servers.sentry_recorder import SentryRecorder, parse_envelope


def run_python(code: str, env: dict[str, str]) -> str:
    """Run ``code`` in a fresh interpreter so sentry_sdk's global state stays out of pytest."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


SEND_ERRORS = """
    import json, os, sentry_sdk

    sentry_sdk.init(
        dsn=os.environ["DSN"], release="ogz@1.2.3", environment="e2e-test",
        auto_enabling_integrations=False,
    )
    sentry_sdk.set_user({"id": "user-42", "email": "user42@example.com"})
    sentry_sdk.set_tag("gatewayz.impact", "high")
    sentry_sdk.add_breadcrumb(category="auth", message="user authenticated")
    ids = []
    for exc in (ValueError("first"), KeyError("second")):
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = ["ogz-custom-group"]
            try:
                raise exc
            except Exception:
                ids.append(sentry_sdk.capture_exception())
    try:
        raise RuntimeError("ungrouped")
    except RuntimeError:
        ids.append(sentry_sdk.capture_exception())
    sentry_sdk.flush()
    print(json.dumps(ids))
"""


def test_bugsink_stores_what_the_sdk_sent_and_honours_fingerprints(bugsink: BugsinkServer) -> None:
    ids = json.loads(run_python(SEND_ERRORS, {"DSN": bugsink.dsn}))

    events = bugsink.wait_for_events(3)
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    first = bugsink.event(ids[0])
    assert first is not None
    assert first["fingerprint"] == ["ogz-custom-group"]
    assert first["tags"]["gatewayz.impact"] == "high"
    assert first["user"] == {"id": "user-42", "email": "user42@example.com"}
    assert first["release"] == "ogz@1.2.3"
    assert first["environment"] == "e2e-test"
    assert first["exception"]["values"][-1]["type"] == "ValueError"
    assert [b["message"] for b in first["breadcrumbs"]["values"]] == ["user authenticated"]
    assert len(first["contexts"]["trace"]["trace_id"]) == 32
    # Same fingerprint, different exception types: one issue; no fingerprint: its own issue.
    issues = bugsink.issues()
    assert sorted(issue["digested_event_count"] for issue in issues) == [1, 2]
    assert bugsink.event("0" * 32) is None


SEND_TRANSACTION = """
    import os, sentry_sdk

    sentry_sdk.init(
        dsn=os.environ["DSN"], release="ogz@1.2.3", traces_sample_rate=1.0,
        auto_enabling_integrations=False,
    )
    with sentry_sdk.start_transaction(op="http.server", name="GET /v1/things") as tx:
        with sentry_sdk.start_span(op="http.client", name="POST provider"):
            pass
        sentry_sdk.capture_message("inside the transaction")
    sentry_sdk.flush()
    print(tx.trace_id)
"""


SEND_SPANS = """
    import os, sentry_sdk
    from sentry_sdk import traces

    sentry_sdk.init(
        dsn=os.environ["DSN"], release="ogz@1.2.3", traces_sample_rate=1.0,
        auto_enabling_integrations=False,
    )
    with traces.start_span("GET /v1/things", attributes={"sentry.op": "http.server"}) as segment:
        with traces.start_span("POST provider", attributes={"sentry.op": "http.client"}):
            pass
        sentry_sdk.capture_message("inside the trace")
    sentry_sdk.flush()
    print(segment.trace_id)
"""
SENTRY_SDK_3 = sentry_sdk.consts.VERSION.startswith("3.")


@pytest.mark.skipif(not SENTRY_SDK_3, reason="sentry-sdk 3 streams span items; 2.x sends transactions (the test below)")
def test_sentry_recorder_parses_span_envelopes(sentry_recorder: SentryRecorder) -> None:
    trace_id = run_python(SEND_SPANS, {"DSN": sentry_recorder.dsn}).strip()

    [event] = sentry_recorder.wait_for_events(1)

    def segment_envelope(recorder: SentryRecorder) -> Any:
        for envelope in recorder.envelopes():
            for item in envelope.of_type("span"):
                if any(s["is_segment"] and s["name"] == "GET /v1/things" for s in item.json()["items"]):
                    return envelope, item
        return None

    envelope, item = sentry_recorder.wait_for(segment_envelope)
    assert item.headers["content_type"] == "application/vnd.sentry.items.span.v2+json"
    spans = item.json()["items"]
    assert item.headers["item_count"] == len(spans)
    assert {s["name"]: s["is_segment"] for s in spans} == {"GET /v1/things": True, "POST provider": False}
    assert {s["trace_id"] for s in spans} == {trace_id} == {envelope.headers["trace"]["trace_id"]}
    assert all(s["attributes"]["sentry.release"]["value"] == "ogz@1.2.3" for s in spans)
    assert event["message"] == "inside the trace" and event["contexts"]["trace"]["trace_id"] == trace_id
    assert envelope.request_headers.get("content-encoding") in {"gzip", "br"}
    assert sentry_recorder.errors() == []


@pytest.mark.skipif(SENTRY_SDK_3, reason="sentry-sdk 3 has no transactions (the test above)")
def test_sentry_recorder_parses_transaction_envelopes(sentry_recorder: SentryRecorder) -> None:
    trace_id = run_python(SEND_TRANSACTION, {"DSN": sentry_recorder.dsn}).strip()

    [tx] = sentry_recorder.wait_for_transactions(1)
    [event] = sentry_recorder.wait_for_events(1)
    assert tx["transaction"] == "GET /v1/things"
    assert tx["contexts"]["trace"]["trace_id"] == trace_id
    assert tx["contexts"]["trace"]["op"] == "http.server"
    assert [span["op"] for span in tx["spans"]] == ["http.client"]
    assert tx["release"] == "ogz@1.2.3"
    assert event["message"] == "inside the transaction"
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    envelope = next(e for e in sentry_recorder.envelopes() if e.of_type("transaction"))
    assert envelope.headers["trace"]["trace_id"] == trace_id
    assert envelope.request_headers.get("content-encoding") in {"gzip", "br"}
    assert b"GET /v1/things" in sentry_recorder.all_bytes()
    assert sentry_recorder.errors() == []


def test_envelope_parser_honours_length_and_newline_items() -> None:
    payload = b'{"a":\n1}'
    body = (
        b'{"event_id":"x"}\n'
        + b'{"type":"attachment","length":%d}\n' % len(payload)
        + payload
        + b'\n{"type":"event"}\n{"message":"m"}\n'
    )
    headers, items = parse_envelope(body)
    assert headers == {"event_id": "x"}
    assert [(i.type, i.payload) for i in items] == [
        ("attachment", payload),
        ("event", b'{"message":"m"}'),
    ]


def _post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=gzip.compress(body), method="POST")
    request.add_header("Content-Encoding", "gzip")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_sentry_recorder_fault_modes() -> None:
    envelope = b'{}\n{"type":"event"}\n{"message":"hi"}\n'
    with SentryRecorder() as recorder:
        url = f"http://{LOOPBACK}:{recorder.port}/api/1/envelope/"
        assert _post(url, envelope)[::2] == (200, b"{}")
        recorder.set_mode("error_500")
        assert _post(url, envelope)[0] == 500
        recorder.set_mode("rate_limited")
        status, headers, _ = _post(url, envelope)
        assert (status, headers["Retry-After"], headers["X-Sentry-Rate-Limits"]) == (
            429,
            "60",
            "60::organization",
        )

        recorder.set_mode("hang")
        hung = socket.create_connection((LOOPBACK, recorder.port), timeout=30)
        body = gzip.compress(envelope)
        hung.sendall(
            b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        recorder.wait_for(lambda r: [e for e in r.envelopes() if e.answered == "hang"])
        recorder.set_mode("ok")  # a hung connection does not block the others
        assert _post(url, envelope)[0] == 200
        assert [e.answered for e in recorder.envelopes()] == [
            "ok",
            "error_500",
            "rate_limited",
            "hang",
            "ok",
        ]
        assert len(recorder.events()) == 5
    # Stopping released the hung handler, which closed the connection without answering.
    assert hung.recv(1024) == b""
    hung.close()


def test_refused_dsn_refuses_connections(refused_dsn: str) -> None:
    port = int(refused_dsn.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, port), timeout=5)


def test_otlp_recorder_decodes_spans_and_metrics(otlp_recorder: OtlpRecorder) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    resource = Resource.create({"service.name": "ogz-selftest"})
    tracer_provider = TracerProvider(resource=resource)  # local: the global one stays unset
    exporter = OTLPSpanExporter(endpoint=f"{otlp_recorder.endpoint}/v1/traces", compression=Compression.Gzip)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("selftest")
    with (
        tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent,
        tracer.start_as_current_span("child", attributes={"gatewayz.n": 3}) as child,
    ):
        child.add_event("crumb", {"k": "v"})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    tracer_provider.shutdown()

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{otlp_recorder.endpoint}/v1/metrics"),
        export_interval_millis=3_600_000,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter_provider.get_meter("selftest").create_counter("ogz.selftest.count").add(2, {"a": "b"})
    meter_provider.shutdown()

    spans = {span["name"]: span for span in otlp_recorder.spans()}
    parent_id = f"{parent.get_span_context().span_id:016x}"
    assert spans["parent"]["span_id"] == parent_id
    assert spans["parent"]["kind"] == "SERVER"
    assert spans["parent"]["parent_span_id"] is None
    assert spans["child"]["parent_span_id"] == parent_id
    assert spans["child"]["trace_id"] == f"{parent.get_span_context().trace_id:032x}"
    assert spans["child"]["attributes"] == {"gatewayz.n": 3}
    assert spans["child"]["events"][0]["name"] == "crumb"
    assert spans["child"]["events"][0]["attributes"] == {"k": "v"}
    assert spans["child"]["status"] == {"code": "ERROR", "message": "boom"}
    assert spans["child"]["resource"]["service.name"] == "ogz-selftest"
    assert otlp_recorder.requests("traces")[0].request_headers["content-encoding"] == "gzip"
    assert "ogz.selftest.count" in otlp_recorder.metric_names()
    [metric] = [m for m in otlp_recorder.metrics() if m["name"] == "ogz.selftest.count"]
    assert (metric["type"], metric["points"]) == ("sum", [{"attributes": {"a": "b"}, "value": 2}])


def test_otlp_recorder_error_mode_fails_the_export(otlp_recorder: OtlpRecorder) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

    results: list[SpanExportResult] = []

    class Recording(OTLPSpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            results.append(super().export(spans))
            return results[-1]

    otlp_recorder.set_mode("error_500")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Recording(endpoint=f"{otlp_recorder.endpoint}/v1/traces")))
    with provider.get_tracer("selftest").start_as_current_span("doomed"):
        pass
    provider.shutdown()
    assert results == [SpanExportResult.FAILURE]
    assert otlp_recorder.wait_for_span("doomed")["name"] == "doomed"


def test_prometheus_scrapes_a_target_and_answers_queries(
    prometheus_factory: PrometheusFactory,
) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from tests.servers.ports import free_port

    registry = CollectorRegistry()
    Gauge("ogz_selftest_value", "self-test gauge", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr=LOOPBACK, registry=registry)
    try:
        prometheus = prometheus_factory([f"{LOOPBACK}:{port}"])
        result = prometheus.wait_for_query("ogz_selftest_value")
        assert [float(item["value"][1]) for item in result] == [42.0]
        assert result[0]["metric"]["job"] == "gateway"
        assert prometheus.values(f'up{{instance="{LOOPBACK}:{port}"}}') == [1.0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


THROWAWAY_GATEWAY = """
    import os

    import httpx
    from fastapi import FastAPI

    app = FastAPI()
    if os.environ.get("SELFTEST_METRICS"):
        from prometheus_client import CollectorRegistry, Counter, start_http_server

        registry = CollectorRegistry()
        Counter("ogz_throwaway", "started", registry=registry).inc()
        start_http_server(
            int(os.environ["OTEL_EXPORTER_PROMETHEUS_PORT"]),
            addr=os.environ["OTEL_EXPORTER_PROMETHEUS_HOST"],
            registry=registry,
        )


    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}


    @app.get("/upstream")
    async def upstream() -> dict[str, object]:
        async with httpx.AsyncClient() as client:
            reply = await client.get(os.environ["GATEWAY_PROVIDER_URL"] + "/hello")
        return {"provider": reply.json(), "env": dict(os.environ)}
"""

THROWAWAY_PROVIDER = """
    from fastapi import FastAPI

    app = FastAPI()


    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}


    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"from": "provider"}
"""


@pytest.fixture
def throwaway_apps(tmp_path: Path) -> dict[str, Any]:
    """A gateway/provider pair in a tmp dir, standing in for examples/gateway/."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "selftest_gateway.py").write_text(textwrap.dedent(THROWAWAY_GATEWAY))
    (apps / "selftest_provider.py").write_text(textwrap.dedent(THROWAWAY_PROVIDER))
    return {
        "app": "selftest_gateway:app",
        "provider_app": "selftest_provider:app",
        "cwd": apps,
    }


# Keep the test independent of whatever distro is installed in the venv.
NO_EXPORTERS = {
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def test_gateway_runs_instrumented_with_a_clean_env(
    gateway_factory: GatewayFactory, throwaway_apps: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OGZ_MUST_NOT_LEAK", "1")
    gateway = gateway_factory(env={**NO_EXPORTERS, "SELFTEST_METRICS": "1"}, **throwaway_apps)

    status, body = http_get(f"{gateway.base_url}/upstream")
    assert status == 200, gateway.logs()
    reply = json.loads(body)
    assert reply["provider"] == {"from": "provider"}
    env = reply["env"]
    assert env["GATEWAY_PROVIDER_URL"] == gateway.provider_url
    assert "OGZ_MUST_NOT_LEAK" not in env
    # opentelemetry-instrument puts its sitecustomize on PYTHONPATH before exec'ing uvicorn.
    assert "auto_instrumentation" in env.get("PYTHONPATH", "")
    status, metrics = http_get(gateway.metrics_url)
    assert status == 200
    assert b"ogz_throwaway_total 1.0" in metrics


def test_gateway_with_workers_stops_them_all(gateway_factory: GatewayFactory, throwaway_apps: dict[str, Any]) -> None:
    gateway = gateway_factory(env=NO_EXPORTERS, extra_args=["--workers", "2"], **throwaway_apps)
    assert http_get(f"{gateway.base_url}/health")[0] == 200

    gateway.stop()
    # The workers inherited the listening socket: if any survived, this would connect.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, gateway.port), timeout=5)
