from __future__ import annotations

import pytest

from otel_gatewayz._errors.grouping import fingerprint_for, group_error, impact_for, normalise_message


def _exc(name: str, message: str) -> Exception:
    return type(name, (Exception,), {})(message)


@pytest.mark.parametrize(
    ("name", "message", "fingerprint"),
    [
        ("InsufficientCreditsError", "User has 0 credits", ("InsufficientCreditsError", "insufficient_credits")),
        ("ProviderAPIError", "OpenRouter API timeout after 30s", ("ProviderAPIError", "provider_error")),
        ("ValidationError", "Invalid model parameter 'gpt-999'", ("ValidationError", "validation_error")),
        ("ValueError", "Unexpected format in response", ("ValueError", "Unexpected format in response")),
        ("RateLimitExceeded", "slow down", ("RateLimitExceeded", "rate_limit")),
        ("OpenAIAPIError", "x", ("OpenAIAPIError", "provider_error")),
        ("AuthenticationError", "bad key", ("AuthenticationError", "auth_error")),
    ],
)
def test_the_specs_fingerprints(name, message, fingerprint):
    assert fingerprint_for(_exc(name, message))[0] == fingerprint


def test_fallback_groups_messages_differing_only_in_variable_parts():
    a = normalise_message("timeout after 30s for bob@example.com at https://x.io/a?b=1 id 3f2a9c1d8e7b")
    b = normalise_message("timeout after 31s for eve@example.org at https://y.io/z id 9a8b7c6d5e4f")
    assert a == b == "timeout after <n>s for <email> at <url> id <hex>"
    assert normalise_message("bad value 'x' and \"y\"") == "bad value <value> and <value>"
    assert normalise_message("job 550e8400-e29b-41d4-a716-446655440000 failed") == "job <uuid> failed"
    assert normalise_message("first line\nsecond line") == "first line"
    assert len(normalise_message("x" * 500)) == 100


def test_the_outermost_exception_decides():
    try:
        try:
            raise ValueError("inner 1")
        except ValueError as inner:
            raise _exc("ProviderAPIError", "outer") from inner
    except Exception as outer:  # noqa: BLE001
        assert fingerprint_for(outer)[0] == ("ProviderAPIError", "provider_error")


def test_user_rules_come_first():
    assert fingerprint_for(_exc("UpstreamTimeout", "t 1"), [("Timeout", "provider_error")]) == (
        ("UpstreamTimeout", "provider_error"),
        "provider_error",
    )


@pytest.mark.parametrize(
    ("route", "impact"),
    [
        ("/v1/chat/completions", "high"),
        ("/v1/messages", "high"),
        ("/auth/login", "high"),
        ("/api_keys", "high"),
        ("/users/me", "medium"),
        ("/payments", "medium"),
        ("/v1/errors/{kind}", "low"),
        (None, "low"),
    ],
)
def test_user_impact_follows_the_spec(route, impact):
    assert impact_for(route) == impact


def test_impact_rules_extend_the_spec():
    assert impact_for("/admin/x", [("/admin", "medium")]) == "medium"
    assert group_error(ValueError("x"), "/users/1", impact_rules=[("/users", "high")]).user_impact == "high"


def test_the_message_fallback_never_groups_on_a_secret():
    from otel_gatewayz._errors.grouping import ErrorGrouper
    from otel_gatewayz._privacy.scrubber import Scrubber

    grouper = ErrorGrouper(scrub=Scrubber().scrub_text)
    keys = ["sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" * 3, "sk_live_" + "9xQ1aB2cD3eF4gH5iJ6kL7mN" * 3]
    groups = [grouper.group(RuntimeError(f"Upstream said: invalid key {key}"), None) for key in keys]
    assert groups[0].fingerprint == groups[1].fingerprint
    assert not any(key[8:16] in part for key in keys for part in groups[0].fingerprint)
