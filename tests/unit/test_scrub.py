from __future__ import annotations

import json

from otel_gatewayz._privacy.scrubber import MARKER, Scrubber, ScrubReport

KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0"


def test_key_names_redact_the_whole_value_and_keep_the_key():
    report = ScrubReport()
    out = Scrubber().scrub(
        {
            "Authorization": "Bearer abc.def",
            "cookie": "s=1",
            "password": "hunter2",
            "x-api-key": "k",
            "nested": {"client_secret": "z"},
            "api_key_id": "5",
        },
        report,
    )
    assert out["Authorization"] == out["cookie"] == out["password"] == out["x-api-key"] == MARKER
    assert out["nested"]["client_secret"] == MARKER
    assert sorted(report.paths) == ["Authorization", "cookie", "nested.client_secret", "password", "x-api-key"]
    assert report.count == 5


def test_token_counters_are_not_secrets():
    attrs = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3, "max_tokens": 100}
    assert Scrubber().scrub(attrs) == attrs


def test_values_are_recognised_inside_text_without_echoing_them():
    text = (
        f"call failed: Bearer {KEY} jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc "
        "aws AKIAABCDEFGHIJKLMNOP card 4111 1111 1111 1111 password=hunter2"
    )
    out = Scrubber().scrub_text(text)
    for secret in (KEY, "eyJhbGci", "AKIAABCDEFGHIJKLMNOP", "4111", "hunter2"):
        assert secret not in out
    assert "Bearer [REDACTED]" in out
    assert "password=[REDACTED]" in out
    assert "1234 5678" in Scrubber().scrub_text("order 1234 5678")  # not a Luhn-valid card


def test_urls_lose_userinfo_and_sensitive_query_values():
    url = "https://bob:pw@api.example.com/v1/x?api_key=abc&model=gpt-4&token=t0k&sig=s"
    out = Scrubber().scrub_text(url)
    assert (
        out == "https://[REDACTED]@api.example.com/v1/x?api_key=[REDACTED]&model=gpt-4&token=[REDACTED]&sig=[REDACTED]"
    )


def test_json_strings_are_parsed_and_scrubbed():
    body = json.dumps({"messages": [{"content": "hi"}], "password": "x", "key": KEY})
    out = json.loads(Scrubber().scrub(body))
    assert out == {"messages": [{"content": "hi"}], "password": MARKER, "key": MARKER}


def test_extra_and_safe_keys():
    scrubber = Scrubber(extra_keys=[r"^ssn$"], safe_keys=[r"^session$"])
    assert scrubber.scrub({"ssn": "1", "session": "abc"}) == {"ssn": MARKER, "session": "abc"}


def test_unexpected_types_pass_through():
    value = {"n": None, "f": 1.5, "b": True, "o": object, "t": ("Bearer abcdefghijkl",)}
    out = Scrubber().scrub(value)
    assert out["o"] is object and out["t"] == ("Bearer [REDACTED]",)
