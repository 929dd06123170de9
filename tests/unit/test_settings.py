from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_gatewayz._settings import SETTINGS, Settings, load_settings, settings_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_follow_the_environment():
    assert load_settings({"APP_ENV": "production"}).traces_sample_rate == 0.01
    assert load_settings({"APP_ENV": "staging"}).traces_sample_rate == 0.1
    assert load_settings({"APP_ENV": "development"}).traces_sample_rate == 1.0
    assert load_settings({"APP_ENV": "prod"}).environment == "production"
    assert load_settings({"APP_ENV": "production"}).capture_expected_errors is False
    assert load_settings({"APP_ENV": "staging"}).capture_expected_errors is True
    assert load_settings({"APP_ENV": "production", "SENTRY_TRACES_SAMPLE_RATE": "0.5"}).traces_sample_rate == 0.5


def test_release_comes_from_the_first_sha_variable_set():
    env = {"VERCEL_GIT_COMMIT_SHA": "v" * 7, "RAILWAY_GIT_COMMIT_SHA": "r" * 7}
    assert load_settings(env).release_sha == "v" * 7
    assert load_settings({**env, "RELEASE_SHA": "abc"}).release == "gatewayz-api@abc"
    assert load_settings({"RAILWAY_GIT_COMMIT_SHA": "r1"}).release_source == "RAILWAY_GIT_COMMIT_SHA"


def test_release_falls_back_to_unknown_outside_git(tmp_path):
    assert load_settings({}, cwd=str(tmp_path)).release_sha == "unknown"


def test_service_name_precedence():
    assert load_settings({}).service_name == "gatewayz-api"
    assert load_settings({"SERVICE_NAME": "a"}).service_name == "a"
    assert load_settings({"SERVICE_NAME": "a", "OTEL_RESOURCE_ATTRIBUTES": "service.name=b"}).service_name == "b"
    env = {"SERVICE_NAME": "a", "OTEL_RESOURCE_ATTRIBUTES": "service.name=b", "OTEL_SERVICE_NAME": "c"}
    assert load_settings(env).service_name == "c"
    env = {"APP_ENV": "staging", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=production"}
    assert load_settings(env).environment == "production"


@pytest.mark.parametrize(
    ("env", "variable", "text"),
    [
        ({"SENTRY_TRACES_SAMPLE_RATE": "abc"}, "SENTRY_TRACES_SAMPLE_RATE", "'abc' is not a number"),
        ({"SENTRY_TRACES_SAMPLE_RATE": "1.5"}, "SENTRY_TRACES_SAMPLE_RATE", "'1.5' is outside 0..1"),
        ({"SENTRY_DSN": "https://nope"}, "SENTRY_DSN", "malformed DSN"),
        ({"SENTRY_ENABLED": "maybe"}, "SENTRY_ENABLED", "not a boolean"),
        ({"APP_ENV": "qa"}, "APP_ENV", "not one of development, staging, production"),
        ({"GATEWAYZ_IMPACT_RULES": "/x=urgent"}, "GATEWAYZ_IMPACT_RULES", "not one of high, medium, low"),
        ({"GATEWAYZ_FINGERPRINT_RULES": "Timeout"}, "GATEWAYZ_FINGERPRINT_RULES", "pattern=value"),
        ({"GATEWAYZ_SCRUB_KEYS": "("}, "GATEWAYZ_SCRUB_KEYS", "not a valid regular expression"),
        ({"GATEWAYZ_SHUTDOWN_TIMEOUT": "-1"}, "GATEWAYZ_SHUTDOWN_TIMEOUT", "must be greater than 0"),
    ],
)
def test_bad_values_become_problems_naming_the_variable(env, variable, text):
    settings = load_settings(env)
    [problem] = settings.problems
    assert problem.variable == variable
    assert text in str(problem)
    assert str(problem).startswith(f"otel_gatewayz: {variable}: ")


def test_bad_values_disable_their_part():
    assert load_settings({"SENTRY_TRACES_SAMPLE_RATE": "abc"}).traces_sample_rate == 0.0
    broken_dsn = load_settings({"SENTRY_DSN": "https://nope"})
    assert (broken_dsn.sentry_dsn, broken_dsn.sentry_enabled) == (None, False)
    assert load_settings({"APP_ENV": "qa"}).environment == "development"


def test_malformed_dsn_is_never_echoed():
    secret = "https://deadbeefsecret@"
    problem = load_settings({"SENTRY_DSN": secret})
    assert "deadbeef" not in str(problem.problems[0])


def test_sentry_enabled_needs_a_dsn_and_can_be_switched_off():
    dsn = "https://key@o1.ingest.example.com/42"
    assert load_settings({"SENTRY_DSN": dsn}).sentry_enabled is True
    assert load_settings({"SENTRY_DSN": dsn, "SENTRY_ENABLED": "false"}).sentry_enabled is False
    assert load_settings({}).sentry_enabled is False
    assert load_settings({"SENTRY_SPOTLIGHT": "true"}).sentry_enabled is True


def test_every_setting_field_is_in_the_table_and_the_readme_matches():
    fields = {f for f in Settings.__dataclass_fields__ if f not in ("problems", "release_source")}
    assert {s.field for s in SETTINGS} == fields
    readme = README.read_text()
    assert settings_table_markdown() in readme
    documented = set(re.findall(r"^\| `([A-Z_]+)`", readme, flags=re.MULTILINE))
    assert documented == {s.env[0] for s in SETTINGS}
