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


SECRET_KEY_NAMES = (
    "stripe_key",
    "azureOpenAIKey",
    "azure_openai_key",
    "X-Goog-Api-Key",
    "creds",
    "private_key",
    "client_secret",
    "aws_secret_access_key",
    "x-amz-security-token",
    "Authorization",
    "proxy-authorization",
    "set-cookie",
    "OPENAI_API_KEY",
    "HF_TOKEN",
    "apikey",
    "dbPassword",
    "ssl_keyfile_password",
    "--ssl-keyfile-password",
    "session_id",
    "sessionid",
    "access_token",
    "id_token",
    "jwt",
    "dsn",
    "sig",
    "http.request.header.x-api-key",
)
SAFE_KEY_NAMES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "max_tokens",
    "total_tokens",
    "token_count",
    "keyboard",
    "monkey",
    "api_key_id",
    "key_id",
    "gatewayz.user.api_key_id",
    "token_type",
    "secret_name",
    "private_key_path",
    "http.response.status_code",
    "InvalidTokenError",
    "KeyError",
    "passthrough",
    "model",
    "openai_model",
    "trace_id",
    "user.id",
)


def test_key_names_are_judged_by_their_tokens():
    scrubber = Scrubber()
    assert [k for k in SECRET_KEY_NAMES if not scrubber.is_secret_key(k)] == []
    assert [k for k in SAFE_KEY_NAMES if scrubber.is_secret_key(k)] == []


def test_secret_keys_in_text_reprs_and_form_bodies():
    scrubber = Scrubber()
    text = "Settings(stripe_key='sk_x_1', creds='hunter2hunter2', model='gpt-4o', max_tokens=100)"
    assert scrubber.scrub_text(text) == (
        "Settings(stripe_key='[REDACTED]', creds='[REDACTED]', model='gpt-4o', max_tokens=100)"
    )
    assert scrubber.scrub_text("a=1&stripe_key=abc123&b=2") == "a=1&stripe_key=[REDACTED]&b=2"
    assert scrubber.scrub_text("X-Goog-Api-Key: abc123 next") == "X-Goog-Api-Key: [REDACTED] next"
    assert scrubber.scrub_text('{"azureOpenAIKey": "abc", "n": 1}') == '{"azureOpenAIKey": "[REDACTED]", "n": 1}'
    kept = "api_key_id=42 key_id: 7 token_count=5 gen_ai.usage.input_tokens=12 if token == expected:"
    assert scrubber.scrub_text(kept) == kept


def test_argv_loses_the_value_after_a_secret_flag():
    argv = ["uvicorn", "app:app", "--ssl-keyfile-password", "hunter2", "--port", "8000", "--api-key=abc"]
    assert Scrubber().scrub(argv) == [
        "uvicorn",
        "app:app",
        "--ssl-keyfile-password",
        MARKER,
        "--port",
        "8000",
        "--api-key=[REDACTED]",
    ]
    assert Scrubber().scrub_text(" ".join(argv)).split()[3] == MARKER


def test_ambiguous_keys_lose_only_random_values():
    scrubber = Scrubber()
    out = scrubber.scrub(
        {
            "azure_openai": "0f6e2b9d41c7a385f0de92b16c4a7e53",
            "azure_openai_deployment": "gpt-4o-mini",
            "stripe_customer": "alice",
        }
    )
    assert out == {"azure_openai": MARKER, "azure_openai_deployment": "gpt-4o-mini", "stripe_customer": "alice"}
    assert scrubber.scrub_text("openai=Xk3vQ9zLm2Rt8WpYb4Nc6Hd1") == "openai=[REDACTED]"


def test_provider_error_body_echoing_a_key_is_scrubbed_and_groups_the_same():
    from otel_gatewayz._errors.grouping import normalise_message

    scrubber = Scrubber()
    keys = ["sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" * 3, "sk_live_" + "9xQ1aB2cD3eF4gH5iJ6kL7mN" * 3]
    messages = [
        f'Upstream 401: {{"error": {{"message": "Invalid API key: {k}", "code": "invalid_api_key"}}}}' for k in keys
    ]
    scrubbed = [scrubber.scrub_text(m) for m in messages]
    for key, out in zip(keys, scrubbed, strict=True):
        assert key[8:16] not in out and MARKER in out
    # The fingerprint fallback must normalise the scrubbed message: then no secret, one group.
    assert normalise_message(scrubbed[0]) == normalise_message(scrubbed[1])
    assert "sk_live" not in normalise_message(scrubbed[0])


def test_multiline_pem_block_goes_whole_also_in_long_text():
    body = "\n".join(["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"] * 12)
    pem = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    text = "Traceback (most recent call last):\n" + '  File "x.py", line 1, in f\n' * 40 + f"ValueError: {pem}\nend"
    out = Scrubber().scrub_text(text)
    assert "MIIEvQIBADAN" not in out and out.endswith("ValueError: [REDACTED]\nend")


def test_base64_wrapped_key_is_decoded_and_redacted():
    import base64

    blob = base64.b64encode(b"sk_live_" + b"Zq8" * 12).decode()
    assert Scrubber().scrub_text(f"config={blob} loaded") == f"config={MARKER} loaded"
    assert Scrubber().scrub_text(f"/v1/blobs/{blob}/raw") == f"/v1/blobs/{MARKER}/raw"


def test_scrubbing_is_idempotent():
    scrubber = Scrubber()
    text = "Bearer abcdefghijkl token=abc creds='x' https://u:p@h/x?sig=1 ghp_" + "a1" * 18
    once = scrubber.scrub_text(text)
    assert scrubber.scrub_text(once) == once


def test_without_detect_secrets_the_supplement_still_scrubs(monkeypatch):
    from otel_gatewayz._privacy import secret_rules as _secret_rules

    def broken() -> tuple[()]:
        raise ImportError("no detect_secrets")

    monkeypatch.setattr(_secret_rules, "_loaded", None)
    monkeypatch.setattr(_secret_rules, "detect_secrets_rules", broken)
    scrubber = Scrubber()
    assert scrubber.rules_source.startswith("supplement only")
    assert scrubber.scrub_text("key sk_live_" + "a1" * 20) == "key [REDACTED]"
    monkeypatch.setattr(_secret_rules, "_loaded", None)  # the next Scrubber loads the real rules again


def test_prompt_and_completion_content_stays_out_unless_allowed():
    from otel_gatewayz._config.settings import load_settings
    from otel_gatewayz._setup.runtime import Parts

    prompt = "Summarise our Q3 board deck for me"
    attributes = {
        "gen_ai.prompt.0.content": prompt,
        "gen_ai.input.messages": f'[{{"role": "user", "content": "{prompt}"}}]',
        "llm.prompts": prompt,
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 12,
    }
    local = f"ChatRequest(model='gpt-4o-mini', messages=[Message(role='user', content='{prompt}')])"
    default = Parts.build(load_settings({})).scrubber
    scrubbed = default.scrub({**attributes, "body": local})
    assert prompt not in repr(scrubbed)
    assert scrubbed["gen_ai.request.model"] == "gpt-4o-mini" and scrubbed["gen_ai.usage.input_tokens"] == 12
    allowed = Parts.build(load_settings({"GATEWAYZ_CAPTURE_MESSAGE_CONTENT": "true"})).scrubber
    assert allowed.scrub(attributes)["gen_ai.prompt.0.content"] == prompt
    assert prompt in allowed.scrub_text(local)


def test_content_keys_leave_messages_and_breadcrumbs_alone():
    from otel_gatewayz._config.settings import load_settings
    from otel_gatewayz._setup.runtime import Parts

    scrubber = Parts.build(load_settings({})).scrubber
    crumb = {"message": "Chat request started", "category": "inference", "data": {"model": "gpt-4"}}
    assert scrubber.scrub(crumb) == crumb
    event = {"message": "Test error from Gatewayz API", "logentry": {"message": "x %s", "params": ["y"]}}
    assert scrubber.scrub(event) == event


def test_a_session_id_is_a_secret_only_when_it_is_the_name():
    scrubber = Scrubber()
    assert scrubber.is_secret_key("session_id") and scrubber.is_secret_key("sessionid")
    assert scrubber.is_secret_key("Cookie")
    assert not scrubber.is_secret_key("posthog_session_id")  # the spec links errors to PostHog sessions
    assert scrubber.scrub({"posthog_session_id": "ph-session-1"}) == {"posthog_session_id": "ph-session-1"}
