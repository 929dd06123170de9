"""How sampled traces reach Sentry (``GATEWAYZ_SENTRY_TRACES_VIA``), and the OTLP route's exporter.

- ``spans``: one envelope of span v2 items per local trace, as sentry-sdk 3 streams them
  (sentry.io; self-hosted Sentry only where its Relay takes span items).
- ``envelope``: one transaction envelope per local trace, as sentry-sdk 2 sends them (every
  Sentry, self-hosted too, and Spotlight).
- ``otlp``: spans batched to the project's OTLP intake
  (``/api/<project>/integration/otlp/v1/traces``, sentry.io), the endpoint and auth header made
  by sentry-sdk's own DSN helpers as its ``OTLPIntegration`` builds them.
- ``none``: no traces to Sentry, errors only (a collector tier decides and stores the traces).

``auto`` picks by destination and SDK major: for a ``*.sentry.io`` DSN without Spotlight,
``spans`` on sentry-sdk 3 (what its own SDK sends) and ``otlp`` on 2.x; anywhere else
transactions, which every Sentry and Spotlight take (fail safe: an unknown server gets the format
all of them read). Bugsink keeps neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from sentry_sdk.consts import VERSION, EndpointType
from sentry_sdk.utils import Dsn

from .._config.settings import Settings

ENVELOPE = "envelope"
OTLP = "otlp"
SPANS = "spans"
NONE = "none"
SIGNAL = "sentry_spans"


def traces_route(settings: Settings, streams_spans: bool) -> str:
    """``spans``, ``envelope``, ``otlp`` or ``none``: how this process's sampled traces reach Sentry."""
    chosen = settings.sentry_traces_via
    if not settings.sentry_dsn:
        return ENVELOPE  # Spotlight alone: transactions, which its viewer shows
    if chosen != "auto":
        return chosen
    host = urlsplit(settings.sentry_dsn).hostname or ""
    saas = host == "sentry.io" or host.endswith(".sentry.io")
    if not saas or settings.spotlight:
        return ENVELOPE
    return SPANS if streams_spans else OTLP


def sentry_otlp_exporter(dsn: str, timeout: float) -> OTLPSpanExporter:
    """An OTLP/HTTP span exporter aimed at the DSN's project, authenticated with its public key."""
    auth = Dsn(dsn).to_auth(f"sentry.python/{VERSION}")
    return OTLPSpanExporter(
        endpoint=auth.get_api_url(EndpointType.OTLP_TRACES),
        headers={"X-Sentry-Auth": auth.to_header()},
        timeout=timeout,
    )
