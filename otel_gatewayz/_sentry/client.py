"""The Sentry client, started from our settings with the hooks and transport the assembly built.

Events carry the active OTel trace and span ids (through sentry-sdk's OTLP integration, which
registers the OTel span as the event's propagation context); every event, transaction and
breadcrumb goes through :class:`SentryHooks` just before it is sent.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import sentry_sdk
from sentry_sdk.client import BaseClient
from sentry_sdk.integrations.otlp import OTLPIntegration
from sentry_sdk.profiler import start_profiler
from sentry_sdk.transport import Transport

from .._config.settings import Settings
from .._safety.log import logger
from .enrichment import SentryHooks
from .sdk import STREAMS_SPANS, Collection, DedupingLoggingIntegration, collection_options, ignore_logger_for_events

COMPRESSION_LEVEL = 6


def sentry_options(
    settings: Settings, hooks: SentryHooks, transport: type[Transport] | Transport | None
) -> dict[str, Any]:
    """The client's options for our settings, hooks and transport (the process's client and the test fixture's)."""
    collection = Collection(
        send_default_pii=settings.send_default_pii,
        include_local_variables=settings.include_local_variables,
        capture_message_content=settings.capture_message_content,
    )
    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn,
        "environment": settings.environment,
        "release": settings.release,
        "max_request_body_size": "never",
        # Transactions are built from OTel spans, not by the SDK, so transaction-bound
        # profiles would never start: profile whole processes (continuous profiling).
        "profile_session_sample_rate": settings.profiles_sample_rate or None,
        "profile_lifecycle": "manual",
        "shutdown_timeout": settings.shutdown_timeout,
        "spotlight": settings.spotlight or None,
        "transport": transport if settings.sentry_dsn else None,
        # gzip -6, not the SDK's -9: on an error event about half the CPU for 1% more bytes.
        "_experiments": {"transport_compression_level": COMPRESSION_LEVEL},
        # Our processors capture errors and build traces from OTel spans; the
        # SDK's own web-framework integrations would capture a second copy.
        "auto_enabling_integrations": False,
        # Trace headers are ours to gate (fail closed, by host): the SDK's default stdlib
        # integration would add sentry-trace and baggage to every http.client request.
        "trace_propagation_targets": [],
        "integrations": [
            OTLPIntegration(setup_otlp_traces_exporter=False, setup_propagator=False, capture_exceptions=False),
            # No Sentry Logs (``enable_logs`` is off): no handler looking at every log line for them.
            DedupingLoggingIntegration(),
        ],
        "before_send": hooks.before_send,
        "before_breadcrumb": hooks.before_breadcrumb,
        **collection_options(collection),
    }
    if not STREAMS_SPANS:  # 3.x has no transactions; ours go straight to the transport, scrubbed already
        options["before_send_transaction"] = hooks.before_send_transaction
    return options


def in_process_client(settings: Settings, hooks: SentryHooks, transport: type[Transport] | Transport) -> BaseClient:
    """A client that is not the process's: no integrations (each patches the process once, for good), not bound.

    What our events carry is built by our hooks; the default integrations' additions (modules,
    argv, runtime context) are left out, since they would stay installed after a test.
    """
    options = sentry_options(settings, hooks, transport)
    options.update(integrations=[], default_integrations=False, auto_enabling_integrations=False, spotlight=None)
    options.pop("profile_session_sample_rate", None)
    with warnings.catch_warnings():
        # Late 2.x releases deprecate the options 3.x replaced (``send_default_pii``): they are the
        # right ones on 2.x, and a user's test run with ``-W error`` must not fail on our choice.
        warnings.filterwarnings("ignore", message=r"The \w+ option is deprecated", category=DeprecationWarning)
        return sentry_sdk.Client(**options)


def init_sentry(
    settings: Settings, hooks: SentryHooks, transport: type[Transport] | Transport | None
) -> BaseClient | None:
    """Start the process's Sentry client and return it; None (with one error line) when it cannot start.

    ``sentry_sdk.init`` (the client made, then bound to the global scope), not a client made
    ahead and bound later: the client's constructor sets up its integrations (the logging hook,
    the OTLP integration's propagation context, the default ones: excepthook, threading,
    stdlib...), the continuous profiler and the SDK's name, each once per process and for good.
    Doing that for a client made ahead would take sentry-sdk internals on both majors
    (``setup_integrations`` into ``client.integrations``, the profiler fed by the client's private
    envelope hook). So the install step starts it here, and the pieces assembled before bind it.
    A client already active (the app's own ``sentry_sdk.init``) is kept, and returned.
    """
    if sentry_sdk.get_client().is_active():
        logger.warning("otel_gatewayz: a Sentry client is already active; keeping it")
        return sentry_sdk.get_client()
    options = sentry_options(settings, hooks, transport)
    try:
        sentry_sdk.init(**options)
    except Exception as exc:  # noqa: BLE001 - a bad option must not stop the app
        logger.error("otel_gatewayz: SENTRY_DSN: Sentry could not start (%s); Sentry is disabled", type(exc).__name__)
        return None
    # Our own error lines (a failing hook, a bad setting) are for the operator, not Sentry issues.
    ignore_logger_for_events("otel_gatewayz")
    # Nor is the OTel API's "Failed to detach context": an instrumentation that ends its span in
    # another task than the one that started it (the anthropic GenAI instrumentation, for every
    # stream a StreamingResponse relays) would otherwise make each such request an error event.
    ignore_logger_for_events("opentelemetry.context")
    if settings.profiles_sample_rate:
        start_profiler()  # a no-op in a process the session rate did not sample
        os.register_at_fork(after_in_child=start_profiler)  # forked workers profile themselves
    logger.info("Sentry initialized successfully (release=%s, environment=%s)", settings.release, settings.environment)
    return sentry_sdk.get_client()
