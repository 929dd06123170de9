"""Defaults for unset standard variables: they add to what the user set, never shadow it."""

from __future__ import annotations

from otel_gatewayz._config.resource import resource_attributes
from otel_gatewayz._config.settings import load_settings
from otel_gatewayz._setup.defaults import EXCLUDED_URLS, environment_defaults


def test_no_endpoint_no_otlp_exporters():
    defaults = environment_defaults({})
    assert (defaults["OTEL_TRACES_EXPORTER"], defaults["OTEL_LOGS_EXPORTER"]) == ("none", "none")
    assert defaults["OTEL_METRICS_EXPORTER"] == "gatewayz_prometheus"


def test_the_protocol_asked_for_picks_the_exporter():
    http = environment_defaults({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert http["OTEL_TRACES_EXPORTER"] == "otlp_proto_http"
    grpc = environment_defaults({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert grpc["OTEL_TRACES_EXPORTER"] == grpc["OTEL_LOGS_EXPORTER"] == "otlp_proto_grpc"
    assert grpc["OTEL_METRICS_EXPORTER"] == "gatewayz_prometheus,otlp_proto_grpc"
    mixed = environment_defaults(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317/", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    )
    assert (mixed["OTEL_TRACES_EXPORTER"], mixed["OTEL_LOGS_EXPORTER"]) == ("otlp_proto_grpc", "none")


def test_excluded_urls_add_to_the_general_list():
    assert environment_defaults({})["OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"] == EXCLUDED_URLS
    combined = environment_defaults({"OTEL_PYTHON_EXCLUDED_URLS": "/internal,/ready"})
    assert combined["OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"] == f"{EXCLUDED_URLS},/internal,/ready"
    assert "OTEL_PYTHON_HTTPX_EXCLUDED_URLS" not in combined  # httpx reads the general list itself


def test_allowing_message_content_asks_the_genai_instrumentations_for_it():
    variable = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    assert variable not in environment_defaults({})  # off by default: the instrumentations capture none
    assert variable not in environment_defaults({"GATEWAYZ_CAPTURE_MESSAGE_CONTENT": "maybe"})
    assert environment_defaults({"GATEWAYZ_CAPTURE_MESSAGE_CONTENT": "true"})[variable] == "span_only"


def test_the_users_resource_attributes_win():
    env = {"OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=pod-7,service.version=1.2.3"}
    attributes = resource_attributes(load_settings(env), env)
    assert (attributes["service.instance.id"], attributes["service.version"]) == ("pod-7", "1.2.3")
    ours = resource_attributes(load_settings({}), {})
    assert len(ours["service.instance.id"]) == 36 and ours["telemetry.distro.name"] == "otel-gatewayz"
