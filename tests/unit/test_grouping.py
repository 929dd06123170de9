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


# Shaped like the openai / anthropic SDKs' error families (openai.APIError and its subclasses).
class APIError(Exception):
    pass


class APIStatusError(APIError):
    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class InternalServerError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


@pytest.mark.parametrize(
    "exc",
    [
        InternalServerError("Error code: 500 - upstream said no", 500),
        RateLimitError("Error code: 429 - slow down", 429),
        APIConnectionError("Connection error."),
        APITimeoutError("Request timed out."),
    ],
)
def test_provider_sdk_errors_group_by_their_class_hierarchy(exc):
    grouping = group_error(exc, "/v1/chat/completions")
    assert grouping.fingerprint == (type(exc).__name__, "provider_error")
    assert grouping.category == "provider_error"
    assert grouping.provider_status_code == getattr(exc, "status_code", None)


def test_spec_rules_on_the_own_name_win_over_the_hierarchy():
    class AuthenticationError(APIStatusError):  # openai.AuthenticationError is an APIError too
        pass

    assert fingerprint_for(AuthenticationError("bad key", 401), ())[1] == "auth_error"
    assert fingerprint_for(_exc("UpstreamAPIError", "x"), [("Upstream", "rate_limit")])[1] == "rate_limit"


def test_transport_errors_are_provider_errors_only_during_a_provider_call():
    import httpx

    for exc in (httpx.ConnectTimeout("timed out"), httpx.RemoteProtocolError("peer closed"), ConnectionRefusedError()):
        expected = ((type(exc).__name__, "provider_error"), "provider_error")
        assert fingerprint_for(exc, (), provider_call=True) == expected
        assert fingerprint_for(exc, (), provider_call=False)[1] == "other"


def test_an_http_exception_raised_from_a_provider_error_groups_as_that_error():
    from starlette.exceptions import HTTPException

    try:
        try:
            raise RateLimitError("Error code: 429", 429)
        except RateLimitError as cause:
            raise HTTPException(502, "provider unavailable") from cause
    except HTTPException as mapped:
        grouping = group_error(mapped, "/v1/chat/completions")
    assert grouping.fingerprint == ("RateLimitError", "provider_error")
    assert (grouping.error_type, grouping.provider_status_code) == ("RateLimitError", 429)
    bare = group_error(HTTPException(503, "down for maintenance 42"), None)
    assert bare.fingerprint == ("HTTPException", "<n>: down for maintenance <n>") and bare.provider_status_code is None
