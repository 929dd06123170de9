# ruff: noqa: BLE001, SIM105 - the spec's examples, kept as the spec writes them
"""The spec's own code examples, with only the import changed, run by test_spec_examples.py.

Not a pytest module: a script run in a subprocess with ``otel_gatewayz.configure()``.
"""

from __future__ import annotations

import json
import sys

from opentelemetry import trace

import otel_gatewayz
from otel_gatewayz import SentryService, add_breadcrumb, capture_errors

first = otel_gatewayz.configure()
provider = trace.get_tracer_provider()
import sentry_sdk  # noqa: E402

client = sentry_sdk.get_client()
second = otel_gatewayz.configure()
assert second is first
assert trace.get_tracer_provider() is provider
assert sentry_sdk.get_client() is client


class ProviderAPIError(Exception):
    pass


def make_provider_call() -> None:
    raise ProviderAPIError("OpenRouter API timeout after 30s")


@capture_errors(operation="process_payment", capture_args=True)
def process_payment(user_id: str, amount: float, card_number: str) -> None:
    raise ValueError("card declined")


tracer = trace.get_tracer("spec")
ids = {}
with tracer.start_as_current_span("request", kind=trace.SpanKind.SERVER):
    SentryService.set_user_context(
        user_id="user_123",
        email="user@example.com",
        api_key_id="7",
        credits=1000,
        plan="pro",
        posthog_session_id="ph-session-1",
    )
    SentryService.set_request_context(
        endpoint="/v1/chat/completions", method="POST", model="gpt-4", provider="openrouter", stream=True
    )
    add_breadcrumb(
        message="Chat completion request started",
        category="inference",
        level="info",
        data={"model": "gpt-4", "stream": True},
    )
    add_breadcrumb("Rate limit check passed", category="rate_limit", level="info")
    try:
        make_provider_call()
    except Exception as e:
        ids["manual"] = SentryService.capture_exception(
            e,
            context={"provider": "openrouter", "model": "gpt-4"},
            tags={"error_type": "provider_timeout"},
            level="error",
        )
    try:
        process_payment("user_123", 12.5, "4111 1111 1111 1111")
    except ValueError:
        pass
ids["message"] = SentryService.capture_message("Test error from Gatewayz API", level="info")
sentry_sdk.flush(5)
json.dump(ids, sys.stdout)
