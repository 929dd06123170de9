"""Sampled spans to Sentry's OTLP intake: batched like any OTLP export, instead of one envelope per request.

Sentry (sentry.io) ingests OTLP traces at ``/api/<project>/integration/otlp/v1/traces``; the
endpoint and auth header come from sentry-sdk's own DSN helpers, as its ``OTLPIntegration``
builds them. Self-hosted Sentry, Bugsink and Spotlight take envelopes, so ``auto`` picks OTLP
only for a ``*.sentry.io`` DSN and never with Spotlight on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from sentry_sdk.consts import VERSION, EndpointType
from sentry_sdk.utils import Dsn

from .._config.settings import Settings

ENVELOPE = "envelope"
OTLP = "otlp"
SIGNAL = "sentry_spans"


def traces_route(settings: Settings) -> str:
    """``envelope`` or ``otlp``: how this process's sampled traces reach Sentry."""
    chosen = settings.sentry_traces_via
    if not settings.sentry_dsn:
        return ENVELOPE  # Spotlight alone: envelopes
    if chosen != "auto":
        return chosen
    host = urlsplit(settings.sentry_dsn).hostname or ""
    saas = host == "sentry.io" or host.endswith(".sentry.io")
    return OTLP if saas and not settings.spotlight else ENVELOPE


def sentry_otlp_exporter(dsn: str, timeout: float) -> OTLPSpanExporter:
    """An OTLP/HTTP span exporter aimed at the DSN's project, authenticated with its public key."""
    auth = Dsn(dsn).to_auth(f"sentry.python/{VERSION}")
    return OTLPSpanExporter(
        endpoint=auth.get_api_url(EndpointType.OTLP_TRACES),
        headers={"X-Sentry-Auth": auth.to_header()},
        timeout=timeout,
    )
