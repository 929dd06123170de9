"""Defaults for standard ``OTEL_*`` variables: the distro only fills in what the user left unset."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

EXCLUDED_URLS = r"/(health|healthz|metrics)/?(\?.*)?$"


def environment_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults for standard ``OTEL_*`` variables; the caller only sets what is unset."""
    otlp = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    otlp_metrics = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))
    otlp_logs = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"))
    return {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        # No collector configured: no OTLP exporter, so no retry noise.
        "OTEL_TRACES_EXPORTER": "otlp_proto_http" if otlp else "none",
        "OTEL_METRICS_EXPORTER": "gatewayz_prometheus" + (",otlp_proto_http" if otlp_metrics else ""),
        "OTEL_LOGS_EXPORTER": "otlp_proto_http" if otlp_logs else "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": EXCLUDED_URLS,
        "OTEL_PYTHON_HTTPX_EXCLUDED_URLS": "",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9464",
    }


def apply_environment_defaults(env: MutableMapping[str, str]) -> None:
    for key, value in environment_defaults(env).items():
        env.setdefault(key, value)
