"""Defaults for standard ``OTEL_*`` variables: the distro only fills in what the user left unset."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from .._config.parsers import SettingError, parse_bool

EXCLUDED_URLS = r"/(health|healthz|metrics)/?(\?.*)?$"
# What the official GenAI instrumentations (opentelemetry-util-genai) capture when content is allowed.
GENAI_CONTENT_ALLOWED = "span_only"


def _otlp_exporter(env: Mapping[str, str], signal: str) -> str | None:
    """The OTLP exporter name for ``signal`` when an endpoint is set, by the protocol asked for."""
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")):
        return None  # no collector configured: no OTLP exporter, so no retry noise
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    return "otlp_proto_grpc" if protocol.strip().lower() == "grpc" else "otlp_proto_http"


def _content_allowed(env: Mapping[str, str]) -> bool:
    try:
        return parse_bool(env.get("GATEWAYZ_CAPTURE_MESSAGE_CONTENT", "false"))
    except SettingError:
        return False  # the settings table names the bad value; content stays out


def environment_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """Defaults for standard ``OTEL_*`` variables; the caller only sets what is unset."""
    traces, metrics, logs = (_otlp_exporter(env, signal) for signal in ("TRACES", "METRICS", "LOGS"))
    # Our health/metrics exclusions add to the user's general list instead of shadowing it.
    general_excluded = env.get("OTEL_PYTHON_EXCLUDED_URLS", "").strip()
    return {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        "OTEL_TRACES_EXPORTER": traces or "none",
        "OTEL_METRICS_EXPORTER": "gatewayz_prometheus" + (f",{metrics}" if metrics else ""),
        "OTEL_LOGS_EXPORTER": logs or "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": ",".join(filter(None, (EXCLUDED_URLS, general_excluded))),
        "OTEL_EXPORTER_PROMETHEUS_PORT": "9464",
        # One switch for content: allowing it past our scrubber also asks the GenAI instrumentations for it.
        **(
            {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": GENAI_CONTENT_ALLOWED}
            if _content_allowed(env)
            else {}
        ),
    }


def apply_environment_defaults(env: MutableMapping[str, str]) -> None:
    for key, value in environment_defaults(env).items():
        env.setdefault(key, value)
