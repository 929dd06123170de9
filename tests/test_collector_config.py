"""collector/config.yaml against the real collector built from collector/builder-config.yaml.

The collector is built once by scripts/build-collector.sh (cached outside the repo under the
manifest's hash). A missing Go toolchain or a failed build fails these tests: they are the
proof that the config works with the pinned collector, so they are never skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from otel_gatewayz._config.settings import load_settings
from tests.servers.collector import (
    BACK_OVERLAY,
    BUILDER_CONFIG,
    COLLECTOR_CONFIG,
    FRONT_OVERLAY,
    SENTRY_OVERLAY,
    CollectorServer,
    collector_env,
    validate,
)
from tests.servers.gateway import GatewayFactory
from tests.servers.otlp_recorder import OtlpRecorder
from tests.servers.prometheus import PrometheusFactory

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
LOOPBACK_ENV = collector_env(
    grpc_port=14317,
    http_port=14318,
    prometheus_port=18889,
    health_port=23133,
    telemetry_port=18888,
    traces_endpoint="http://127.0.0.1:14319",
)
TIERS_ENV = {
    "COLLECTOR_BACK_COLLECTORS": "[127.0.0.1:24317, 127.0.0.1:34317]",
    "COLLECTOR_TAIL_DECISION_WAIT": "2s",
    "COLLECTOR_TAIL_SAMPLE_PERCENT": "25",
}
# Every way the configs are run: alone, with the Sentry overlay, and the two tiers (the backs
# may take the Sentry overlay too: they hold the kept traces).
CONFIG_SETS = (
    (COLLECTOR_CONFIG,),
    (COLLECTOR_CONFIG, SENTRY_OVERLAY),
    (COLLECTOR_CONFIG, FRONT_OVERLAY),
    (COLLECTOR_CONFIG, BACK_OVERLAY),
    (COLLECTOR_CONFIG, BACK_OVERLAY, SENTRY_OVERLAY),
)
SENTRY_ENV = {
    "SENTRY_OTLP_ENDPOINT": "https://o1.ingest.sentry.io/api/2/integration/otlp",
    "SENTRY_PUBLIC_KEY": "0123456789abcdef0123456789abcdef",
}
SECRETS = (
    "abc.def-ghi",
    "sk-proj-abcdefghijklmnop",
    "sk-abcdefgh12345678",
    "eyJhbGciOiJIUzI1NiJ9.payload",
    "session=s3cr3t",
    "xyz-key-123",
)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _used_types(*configs: Path) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for config in configs:
        data = _load(config)
        for kind in KINDS:
            used[kind] |= {_component_type(cid) for cid in data.get(kind) or {}}
    return used


# --- The manifest -------------------------------------------------------------------------


def test_builder_config_pins_every_component_to_the_dist_version() -> None:
    manifest = _load(BUILDER_CONFIG)
    version = manifest["dist"]["version"]
    modules = [m["gomod"] for kind in KINDS for m in manifest.get(kind) or []]
    assert modules, "builder-config.yaml lists no components"
    versions = {gomod.split()[1] for gomod in modules}
    assert versions == {f"v{version}"}, f"components are not all at v{version}: {sorted(versions)}"


def test_built_collector_has_exactly_the_components_the_configs_use(collector_bin: Path) -> None:
    """Both ways; and by their current names (a deprecated alias such as ``otlphttp`` still
    validates, but is not the name ``components`` reports)."""
    done = subprocess.run([str(collector_bin), "components"], capture_output=True, text=True, timeout=60, check=True)
    built = yaml.safe_load(done.stdout)
    used = _used_types(COLLECTOR_CONFIG, SENTRY_OVERLAY, FRONT_OVERLAY, BACK_OVERLAY)
    for kind in KINDS:
        names = {component["name"] for component in built.get(kind) or []}
        assert names == used[kind], (
            f"{kind}: built but unused {sorted(names - used[kind])}, used but not built {sorted(used[kind] - names)}"
        )
    # ...and the binary really comes from this manifest, at its version.
    built_modules = {c["module"] for kind in KINDS for c in built.get(kind) or []}
    manifest = _load(BUILDER_CONFIG)
    assert built_modules == {m["gomod"] for kind in KINDS for m in manifest.get(kind) or []}
    assert built["buildinfo"]["version"] == manifest["dist"]["version"]


def _merged(configs: tuple[Path, ...]) -> dict[str, Any]:
    """The configs merged as the collector merges them: maps key by key, lists replaced."""
    merged: dict[str, Any] = {}
    for config in configs:
        data = _load(config)
        for kind in KINDS:
            merged.setdefault(kind, {}).update(data.get(kind) or {})
        for name, pipeline in data["service"]["pipelines"].items():
            merged.setdefault("pipelines", {}).setdefault(name, {}).update(pipeline)
    return merged


@pytest.mark.parametrize("configs", CONFIG_SETS, ids=lambda configs: "+".join(c.stem for c in configs))
def test_every_defined_component_is_used_by_a_pipeline(configs: tuple[Path, ...]) -> None:
    merged = _merged(configs)
    base_service = _load(COLLECTOR_CONFIG)["service"]
    referenced = set(base_service.get("extensions") or [])
    for pipeline in merged["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            referenced |= set(pipeline.get(kind) or [])
    defined = {cid for kind in KINDS for cid in merged.get(kind) or {}}
    # A front sends traces to the backs, which feed the trace store: its exporter stays unbuilt there.
    unused = {"otlp_http/traces"} if FRONT_OVERLAY in configs else set()
    assert defined - referenced == unused, f"{configs}: defined but unused {sorted(defined - referenced)}"
    for pipeline in merged["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1] == "batch"


def test_the_front_scrubs_traces_before_routing_them_by_trace_id() -> None:
    merged = _merged((COLLECTOR_CONFIG, FRONT_OVERLAY))
    traces = merged["pipelines"]["traces"]
    assert "redaction" in traces["processors"], "traces are scrubbed before they leave the front"
    assert "load_balancing" in traces["exporters"]
    balancing = merged["exporters"]["load_balancing"]
    assert balancing["routing_key"] == "traceID"
    # Metrics and logs stay on the front, as in config.yaml (Prometheus scrapes it).
    for name in ("metrics", "logs"):
        assert merged["pipelines"][name] == _load(COLLECTOR_CONFIG)["service"]["pipelines"][name]


def test_the_backs_tail_sample_with_the_distros_defaults() -> None:
    merged = _merged((COLLECTOR_CONFIG, BACK_OVERLAY))
    assert merged["pipelines"]["traces"]["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    assert (
        merged["pipelines"]["traces"]["exporters"]
        == _load(COLLECTOR_CONFIG)["service"]["pipelines"]["traces"]["exporters"]
    )
    tail = merged["processors"]["tail_sampling"]
    policies = {policy["type"]: policy for policy in tail["policies"]}
    assert set(policies) == {"status_code", "latency", "probabilistic"}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    # The same defaults as the in-process decision: GATEWAYZ_KEEP_SLOWER_THAN, and the production head rate.
    production = load_settings({"APP_ENV": "production"})
    assert production.keep_slower_than is not None
    assert int(_default(policies["latency"]["latency"]["threshold_ms"])) == production.keep_slower_than * 1000
    share = float(_default(policies["probabilistic"]["probabilistic"]["sampling_percentage"]))
    assert share == production.traces_sample_rate * 100
    assert _default(tail["decision_wait"]) == "10s"


def _default(value: str) -> str:
    """``${env:NAME:-default}`` -> ``default``."""
    match = re.fullmatch(r"\$\{env:\w+:-(.*)\}", value)
    assert match, f"{value} has no default"
    return match.group(1)


def test_the_sentry_overlay_keeps_the_base_exporters() -> None:
    base = _load(COLLECTOR_CONFIG)["service"]["pipelines"]
    overlay = _load(SENTRY_OVERLAY)["service"]["pipelines"]
    for name, pipeline in overlay.items():
        # The collector replaces lists when merging configs: the overlay must repeat them.
        assert set(base[name]["exporters"]) < set(pipeline["exporters"])
        assert "otlp_http/sentry" in pipeline["exporters"]


# --- validate -----------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, LOOPBACK_ENV], ids=["compose-defaults", "loopback"])
def test_collector_validates_the_config(collector_bin: Path, env: dict[str, str]) -> None:
    done = validate(collector_bin, [COLLECTOR_CONFIG], env)
    assert done.returncode == 0, done.stderr


def test_collector_validates_the_sentry_overlay(collector_bin: Path) -> None:
    done = validate(collector_bin, [COLLECTOR_CONFIG, SENTRY_OVERLAY], {**LOOPBACK_ENV, **SENTRY_ENV})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("env", [{}, {**LOOPBACK_ENV, **TIERS_ENV}], ids=["compose-defaults", "loopback"])
@pytest.mark.parametrize(
    "configs",
    [
        (COLLECTOR_CONFIG, FRONT_OVERLAY),
        (COLLECTOR_CONFIG, BACK_OVERLAY),
        (COLLECTOR_CONFIG, BACK_OVERLAY, SENTRY_OVERLAY),
    ],
    ids=["front", "back", "back+sentry"],
)
def test_collector_validates_the_two_tiers(collector_bin: Path, configs: tuple[Path, ...], env: dict[str, str]) -> None:
    done = validate(collector_bin, configs, {**env, **SENTRY_ENV})
    assert done.returncode == 0, done.stderr


def test_validate_rejects_the_sentry_overlay_without_its_endpoint(collector_bin: Path) -> None:
    env = {**LOOPBACK_ENV, "SENTRY_PUBLIC_KEY": SENTRY_ENV["SENTRY_PUBLIC_KEY"]}
    done = validate(collector_bin, [COLLECTOR_CONFIG, SENTRY_OVERLAY], env)
    assert done.returncode != 0
    assert "otlp_http/sentry" in done.stderr


def test_validate_rejects_an_unknown_component(collector_bin: Path, tmp_path: Path) -> None:
    broken = tmp_path / "config.yaml"
    broken.write_text(COLLECTOR_CONFIG.read_text().replace("memory_limiter", "memorylimiter"))
    done = validate(collector_bin, [broken], LOOPBACK_ENV)
    assert done.returncode != 0
    assert "memorylimiter" in done.stderr


# --- The running pipeline -----------------------------------------------------------------

RESOURCE = {
    "service.name": "gatewayz-api",
    "service.version": "4322aec",
    "deployment.environment.name": "production",
    "service.instance.id": "worker-1",
    "host.name": "app-host",
    "process.pid": 4242,
    "telemetry.sdk.language": "python",
}
TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    def wrap(value: Any) -> dict[str, Any]:
        if isinstance(value, bool):
            return {"boolValue": value}
        if isinstance(value, int):
            return {"intValue": str(value)}
        if isinstance(value, list):
            return {"arrayValue": {"values": [wrap(v) for v in value]}}
        return {"stringValue": value}

    return [{"key": key, "value": wrap(value)} for key, value in values.items()]


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _send_telemetry(endpoint: str) -> None:
    now = time.time_ns()
    start = now - 10**9
    resource = {"attributes": _attrs(RESOURCE)}
    metrics = [
        {
            "name": "gatewayz.errors",
            "unit": "{error}",
            "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": True,
                "dataPoints": [
                    {
                        "asInt": "3",
                        "startTimeUnixNano": str(start),
                        "timeUnixNano": str(now),
                        "attributes": _attrs(
                            {
                                "error_category": "provider_error",
                                "error_type": "HTTPStatusError",
                                "user_impact": "high",
                                "http.route": "/v1/chat/completions",
                            }
                        ),
                    }
                ],
            },
        },
        {
            "name": "http.server.request.duration",
            "unit": "s",
            "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [
                    {
                        "count": "2",
                        "sum": 0.3,
                        "bucketCounts": ["1", "1", "0"],
                        "explicitBounds": [0.1, 1.0],
                        "startTimeUnixNano": str(start),
                        "timeUnixNano": str(now),
                        "exemplars": [
                            {"asDouble": 0.2, "timeUnixNano": str(now), "traceId": TRACE_ID, "spanId": SPAN_ID}
                        ],
                        "attributes": _attrs(
                            {
                                "http.route": "/v1/chat/completions",
                                "http.request.method": "POST",
                                "http.response.status_code": 200,
                            }
                        ),
                    }
                ],
            },
        },
    ]
    span_attributes = {
        "http.request.header.authorization": ["Bearer abc.def-ghi"],
        "http.request.header.cookie": ["session=s3cr3t"],
        "http.request.header.x-api-key": ["xyz-key-123"],
        "url.full": "https://llm.example/v1/chat?api_key=sk-abcdefgh12345678&stream=true",
        "gatewayz.note": "retried with Bearer eyJhbGciOiJIUzI1NiJ9.payload and sk-proj-abcdefghijklmnop",
        "user.id": "user-7",
        "gatewayz.user.api_key_id": "4711",
        "user.email": "dev@example.com",
        "http.route": "/v1/chat/completions",
        "gen_ai.usage.input_tokens": 12,
    }
    spans = {
        "resourceSpans": [
            {
                "resource": resource,
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "name": "POST /v1/chat/completions",
                                "kind": 2,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(now),
                                "attributes": _attrs(span_attributes),
                            }
                        ],
                    }
                ],
            }
        ]
    }
    logs = {
        "resourceLogs": [
            {
                "resource": resource,
                "scopeLogs": [
                    {
                        "scope": {"name": "test"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(now),
                                "severityText": "ERROR",
                                "body": {"stringValue": "upstream said no to Bearer abc.def-ghi"},
                                "attributes": _attrs({"http.request.header.authorization": "Bearer abc.def-ghi"}),
                            }
                        ],
                    }
                ],
            }
        ]
    }
    _post(
        f"{endpoint}/v1/metrics",
        {
            "resourceMetrics": [
                {"resource": resource, "scopeMetrics": [{"scope": {"name": "otel_gatewayz"}, "metrics": metrics}]}
            ]
        },
    )
    _post(f"{endpoint}/v1/traces", spans)
    _post(f"{endpoint}/v1/logs", logs)


@pytest.fixture
def trace_store() -> Iterator[OtlpRecorder]:
    with OtlpRecorder() as recorder:
        yield recorder


@pytest.fixture
def collector(collector_bin: Path, trace_store: OtlpRecorder, tmp_path: Path) -> Iterator[CollectorServer]:
    with CollectorServer(
        collector_bin, tmp_path / "collector", traces_endpoint=trace_store.endpoint, debug_verbosity="detailed"
    ) as server:
        yield server


def _exposition(url: str, openmetrics: bool = False) -> str:
    headers = {"Accept": "application/openmetrics-text;version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        text: str = response.read().decode()
        return text


def _series(exposition: str, name: str) -> list[dict[str, str]]:
    found = []
    for line in exposition.splitlines():
        match = re.match(rf"{name}\{{(.*?)\}} ", line)
        if match:
            found.append(dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1))))
    return found


@pytest.mark.e2e
def test_metrics_carry_the_common_labels_and_nothing_else(collector: CollectorServer) -> None:
    _send_telemetry(collector.otlp_http_endpoint)
    deadline = time.monotonic() + 15
    while not _series(text := _exposition(collector.metrics_url), "gatewayz_errors_total"):
        assert time.monotonic() < deadline, f"no gatewayz_errors_total in\n{text}\n{collector.logs()[-3000:]}"
        time.sleep(0.2)
    common_labels = {
        "service_name": "gatewayz-api",
        "service_version": "4322aec",
        "deployment_environment_name": "production",
        "service_instance_id": "worker-1",
        "job": "gatewayz-api",
        "instance": "worker-1",
        # As on the app's own endpoint (the Python Prometheus exporter adds them too).
        "otel_scope_name": "otel_gatewayz",
        "otel_scope_schema_url": "",
        "otel_scope_version": "",
    }
    [errors] = _series(text, "gatewayz_errors_total")
    assert errors == {
        **common_labels,
        "error_category": "provider_error",
        "error_type": "HTTPStatusError",
        "user_impact": "high",
        "http_route": "/v1/chat/completions",
    }
    assert re.search(r"^gatewayz_errors_total\{.*\} 3$", text, re.MULTILINE)
    buckets = _series(text, "http_server_request_duration_seconds_bucket")
    assert {b["le"] for b in buckets} == {"0.1", "1", "+Inf"}
    for bucket in buckets:
        assert {k: v for k, v in bucket.items() if k != "le"} == {
            **common_labels,
            "http_route": "/v1/chat/completions",
            "http_request_method": "POST",
            "http_response_status_code": "200",
        }
    # The exemplar links the latency bucket to the trace (OpenMetrics only).
    openmetrics = _exposition(collector.metrics_url, openmetrics=True)
    assert re.search(rf'_bucket\{{.*le="1.0"\}} 2 # \{{.*trace_id="{TRACE_ID}".*\}} 0.2', openmetrics)


@pytest.mark.e2e
def test_traces_reach_the_trace_store_scrubbed(collector: CollectorServer, trace_store: OtlpRecorder) -> None:
    _send_telemetry(collector.otlp_http_endpoint)
    span = trace_store.wait_for_span("POST /v1/chat/completions", timeout=15)
    attributes = span["attributes"]
    assert attributes["user.id"] == "user-7"
    assert attributes["user.email"] == "dev@example.com"
    assert attributes["gatewayz.user.api_key_id"] == "4711"
    assert attributes["http.route"] == "/v1/chat/completions"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["url.full"].startswith("https://llm.example/v1/chat")
    assert attributes["url.full"].endswith("&stream=true")
    for key in ("authorization", "cookie", "x-api-key"):
        assert attributes[f"http.request.header.{key}"] == "****"
    dump = json.dumps(span)
    for secret in SECRETS:
        assert secret not in dump
    # resource_detection adds what is missing and overrides nothing the app set.
    assert span["resource"]["service.name"] == "gatewayz-api"
    assert span["resource"]["host.name"] == "app-host"
    assert span["resource"]["os.type"]


@pytest.mark.e2e
def test_debug_output_is_scrubbed_too(collector: CollectorServer, trace_store: OtlpRecorder) -> None:
    _send_telemetry(collector.otlp_http_endpoint)
    trace_store.wait_for_span("POST /v1/chat/completions", timeout=15)
    deadline = time.monotonic() + 15
    while "upstream said no to" not in collector.logs():
        assert time.monotonic() < deadline, collector.logs()[-3000:]
        time.sleep(0.2)
    logs = collector.logs()
    assert "upstream said no to ****" in logs
    for secret in SECRETS:
        assert secret not in logs


@pytest.mark.e2e
def test_prometheus_scrapes_the_collector(collector: CollectorServer, prometheus_factory: PrometheusFactory) -> None:
    _send_telemetry(collector.otlp_http_endpoint)
    prometheus = prometheus_factory([collector.prometheus_target])
    [series] = prometheus.wait_for_query(
        'gatewayz_errors_total{service_name="gatewayz-api",deployment_environment_name="production",'
        'service_version="4322aec",user_impact="high"}',
        timeout=30,
    )
    assert float(series["value"][1]) == 3


@pytest.mark.e2e
def test_sentry_overlay_sends_traces_and_logs_with_the_auth_header(
    collector_bin: Path, trace_store: OtlpRecorder, tmp_path: Path
) -> None:
    with (
        OtlpRecorder() as sentry,
        CollectorServer(
            collector_bin,
            tmp_path / "collector",
            configs=(COLLECTOR_CONFIG, SENTRY_OVERLAY),
            traces_endpoint=trace_store.endpoint,
            env={"SENTRY_OTLP_ENDPOINT": sentry.endpoint, "SENTRY_PUBLIC_KEY": SENTRY_ENV["SENTRY_PUBLIC_KEY"]},
        ) as collector,
    ):
        _send_telemetry(collector.otlp_http_endpoint)
        sentry.wait_for(lambda r: r.requests("traces") and r.requests("logs"), timeout=15)
        trace_store.wait_for_span("POST /v1/chat/completions", timeout=15)
    for request in sentry.requests():
        assert request.request_headers["x-sentry-auth"] == f"sentry sentry_key={SENTRY_ENV['SENTRY_PUBLIC_KEY']}"
    assert not sentry.requests("metrics")
    [log] = sentry.logs()
    assert log["body"] == "upstream said no to ****"


# --- The example app through the collector -------------------------------------------------


@pytest.mark.e2e
def test_the_example_app_reaches_prometheus_and_the_trace_store_through_the_collector(
    collector: CollectorServer,
    trace_store: OtlpRecorder,
    gateway_factory: GatewayFactory,
    prometheus_factory: PrometheusFactory,
) -> None:
    gateway = gateway_factory(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "APP_ENV": "staging",
            "RELEASE_SHA": "4322aec",
            "SERVICE_NAME": "gatewayz-e2e",
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        }
    )
    headers = {"Authorization": "Bearer gw_alice", "Cookie": "session=s3cr3t"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as client:
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200
        assert client.get("/v1/errors/provider").status_code == 500

    prometheus = prometheus_factory([collector.prometheus_target])
    resource = 'service_name="gatewayz-e2e",deployment_environment_name="staging",service_version="4322aec"'
    [requests] = prometheus.wait_for_query(
        f'http_server_request_duration_seconds_count{{{resource},http_route="/v1/chat/completions"}}', timeout=30
    )
    assert float(requests["value"][1]) == 1
    [errors] = prometheus.wait_for_query(f'gatewayz_errors_total{{{resource},error_category="provider_error"}}')
    assert errors["metric"]["http_route"] == "/v1/errors/{kind}"
    assert errors["metric"]["user_impact"]

    span = trace_store.wait_for(
        lambda r: next(
            (
                s
                for s in r.spans()
                if s["kind"] == "SERVER" and s["attributes"].get("http.route") == "/v1/errors/{kind}"
            ),
            None,
        ),
        timeout=15,
    )
    assert span["attributes"]["user.id"] == "alice"
    assert span["resource"]["service.version"] == "4322aec"
    assert span["resource"]["deployment.environment.name"] == "staging"
    dump = json.dumps(trace_store.spans())
    for secret in ("gw_alice", "s3cr3t", "sk-demo-"):
        assert secret not in dump
