from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_gatewayz._config.settings import SETTINGS, Settings, load_settings, settings_table_markdown

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
    fields = {f for f in Settings.__dataclass_fields__ if f not in ("problems", "sources")}
    assert {s.field for s in SETTINGS} == fields
    readme = README.read_text()
    assert settings_table_markdown() in readme
    configuration = readme.split("## Configuration", 1)[1].split("### Standard variables", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", configuration, flags=re.MULTILINE))
    assert documented == {s.env[0] for s in SETTINGS}


# Garbage of every kind a deployment has been seen to hold.
GARBAGE = (
    "\x00garbage",
    "nan",
    "inf",
    "-1",
    "99999",
    "maybe",
    "(",
    "/etc/hostname/below-a-file",
    "https://key@host:99999/1",
    "a=b=c,",
    "nonsense",
)
FREE_TEXT = {"service_name"}


@pytest.mark.parametrize("decl", SETTINGS, ids=lambda decl: decl.field)
def test_every_setting_survives_garbage_and_names_its_variable(decl):
    """No garbage raises; what a setting cannot use is a problem naming the variable, and the value
    left is the declared fallback (its default, or what the bad value disables)."""
    rejected = 0
    for variable in decl.env:
        for garbage in GARBAGE:
            settings = load_settings({variable: garbage})
            problems = [p for p in settings.problems if p.variable == variable]
            if not problems:
                continue
            rejected += 1
            assert str(problems[0]).startswith(f"otel_gatewayz: {variable}: ")
            assert decl.on_error in str(problems[0])
            assert "\x00" not in str(problems[0]) or decl.field in FREE_TEXT
    assert rejected or decl.field in FREE_TEXT, f"{decl.field} accepted every garbage value"


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "99999"}, "prometheus_port", None),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "-1"}, "prometheus_port", None),
        ({"GATEWAYZ_METRICS_DIR": "/etc/hostname/below-a-file"}, "metrics_dir", None),
        ({"SENTRY_DSN": "https://key@127.0.0.1:99999/1"}, "sentry_dsn", None),
        ({"GATEWAYZ_SHUTDOWN_TIMEOUT": "nan"}, "shutdown_timeout", 5.0),
        ({"GATEWAYZ_SHUTDOWN_TIMEOUT": "inf"}, "shutdown_timeout", 5.0),
        ({"OTEL_TRACES_EXPORTER": "nonsense"}, "traces_exporters", ()),
        ({"OTEL_METRICS_EXPORTER": "gatewayz_prometheus,nonsense"}, "metrics_exporters", ("gatewayz_prometheus",)),
        ({"OTEL_TRACES_SAMPLER": "nonsense"}, "traces_sampler", None),
    ],
)
def test_values_seen_breaking_the_distro_disable_only_their_part(env, field, value):
    settings = load_settings(env)
    assert getattr(settings, field) == value
    [problem] = settings.problems
    assert problem.variable == next(iter(env))


def test_defaults_are_the_declared_ones():
    settings = load_settings({}, cwd="/")
    for decl in SETTINGS:
        if decl.field in ("release_sha", "sentry_enabled"):
            continue  # derived: git, and "a DSN or Spotlight is set"
        assert getattr(settings, decl.field) == decl.default_for("development", "/"), decl.field
        assert getattr(Settings(), decl.field) == decl.default_for("development", "/"), decl.field
    production = load_settings({"APP_ENV": "production"})
    assert (production.traces_sample_rate, production.profiles_sample_rate) == (0.01, 0.01)
    assert production.capture_expected_errors is False
    assert (settings.prometheus_host, settings.prometheus_port, settings.shutdown_timeout) == ("localhost", 9464, 5.0)
    assert settings.release_sha == "unknown" and settings.sentry_enabled is False


def test_good_values_of_the_standard_variables_pass():
    settings = load_settings(
        {
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_EXPORTER_PROMETHEUS_PORT": "9100",
            "OTEL_TRACES_EXPORTER": "otlp_proto_http",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    assert settings.problems == ()
    assert (settings.traces_sampler, settings.prometheus_port) == ("parentbased_always_on", 9100)
    assert (settings.traces_exporters, settings.logs_exporters) == (("otlp_proto_http",), ())


def test_sentry_variables_and_the_users_resource_follow_the_documented_precedence():
    sentry_only = load_settings({"SENTRY_RELEASE": "checkout@abc123", "SENTRY_ENVIRONMENT": "staging"}, cwd="/")
    assert (sentry_only.release, sentry_only.release_sha, sentry_only.release_source) == (
        "checkout@abc123",
        "abc123",
        "SENTRY_RELEASE",
    )
    assert sentry_only.environment == "staging"
    both = load_settings(
        {
            "SENTRY_RELEASE": "checkout@abc123",
            "RELEASE_SHA": "def456",
            "APP_ENV": "production",
            "SENTRY_ENVIRONMENT": "staging",
        }
    )
    assert (both.release, both.release_sha, both.environment) == ("checkout@abc123", "def456", "production")
    resource = load_settings({"RELEASE_SHA": "def456", "OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3"})
    assert (resource.release_sha, resource.release) == ("1.2.3", "gatewayz-api@1.2.3")


def test_propagator_names_are_validated():
    assert load_settings({}).propagators is None
    assert load_settings({"OTEL_PROPAGATORS": "tracecontext,sentry"}).propagators == ("tracecontext", "sentry")
    assert load_settings({"OTEL_PROPAGATORS": "none"}).propagators == ()
    bad = load_settings({"OTEL_PROPAGATORS": "tracecontext,nonsense"})
    assert bad.propagators is None and "unknown propagator 'nonsense'" in str(bad.problems[0])


def test_keeping_traces_is_on_by_default_and_its_slow_threshold_parses():
    defaults = load_settings({})
    assert defaults.keep_traces is True and defaults.keep_slower_than == 30.0
    assert load_settings({"GATEWAYZ_KEEP_TRACES": "false"}).keep_traces is False
    assert load_settings({"GATEWAYZ_KEEP_SLOWER_THAN": "2.5s"}).keep_slower_than == 2.5
    assert load_settings({"GATEWAYZ_KEEP_SLOWER_THAN": "off"}).keep_slower_than is None
    bad = load_settings({"GATEWAYZ_KEEP_SLOWER_THAN": "0"})
    assert bad.keep_slower_than == 30.0
    assert [p.variable for p in bad.problems] == ["GATEWAYZ_KEEP_SLOWER_THAN"]
