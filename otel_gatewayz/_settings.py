"""The one table of settings: each row names its env var(s), type, default and meaning.

Values are parsed once into a frozen :class:`Settings`. A bad value never raises: it is
reported as a :class:`Problem` naming the variable, and the part it governs is disabled
(or falls back to its default), so the application keeps serving.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sentry_sdk.utils import BadDsn, Dsn

ENVIRONMENTS = ("development", "staging", "production")
_ENV_ALIASES = {"dev": "development", "prod": "production", "stage": "staging", "test": "development"}
# The spec's cost section: sample little in production, a tenth in staging, all in development.
_TRACE_RATE_BY_ENV = {"production": 0.01, "staging": 0.1, "development": 1.0}
_PROFILE_RATE_BY_ENV = {"production": 0.01, "staging": 0.5, "development": 0.0}
_RELEASE_VARS = ("RELEASE_SHA", "VERCEL_GIT_COMMIT_SHA", "RAILWAY_GIT_COMMIT_SHA")


_MALFORMED_DSN = "malformed DSN (it needs http(s), a public key, a host and a project id)"


class SettingError(ValueError):
    """A value that cannot be used; the message says why without echoing secrets."""


@dataclass(frozen=True)
class Problem:
    """One bad setting: the variable, what is wrong, and what was disabled because of it."""

    variable: str
    reason: str
    consequence: str

    def __str__(self) -> str:
        return f"otel_gatewayz: {self.variable}: {self.reason}; {self.consequence}"


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    field: str
    env: tuple[str, ...]
    type: str
    default: str
    meaning: str


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{raw!r} is not a boolean (use true or false)")


def _parse_rate(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise SettingError(f"{raw!r} is outside 0..1")
    return value


def _parse_positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{raw!r} is not a number") from None
    if value <= 0:
        raise SettingError(f"{raw!r} must be greater than 0")
    return value


def _parse_dsn(raw: str) -> str:
    try:
        dsn = Dsn(raw.strip())
    except BadDsn:
        # Never echo the value: a DSN carries the project's public key.
        raise SettingError(_MALFORMED_DSN) from None
    if dsn.scheme not in ("http", "https") or not dsn.host:
        raise SettingError(_MALFORMED_DSN)
    return raw.strip()


def _parse_environment(raw: str) -> str:
    value = raw.strip().lower()
    value = _ENV_ALIASES.get(value, value)
    if value not in ENVIRONMENTS:
        raise SettingError(f"{raw!r} is not one of {', '.join(ENVIRONMENTS)}")
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_rules(raw: str) -> tuple[tuple[str, str], ...]:
    """``pattern=value,pattern=value`` pairs, in order."""
    rules: list[tuple[str, str]] = []
    for item in _parse_list(raw):
        pattern, sep, value = item.partition("=")
        if not sep or not pattern.strip() or not value.strip():
            raise SettingError(f"rule {item!r} is not of the form pattern=value")
        rules.append((pattern.strip(), value.strip()))
    return tuple(rules)


def _parse_impact_rules(raw: str) -> tuple[tuple[str, str], ...]:
    rules = _parse_rules(raw)
    for _, level in rules:
        if level not in ("high", "medium", "low"):
            raise SettingError(f"impact {level!r} is not one of high, medium, low")
    return rules


def _parse_regexes(raw: str) -> tuple[str, ...]:
    patterns = _parse_list(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SettingError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "sentry_dsn",
        ("SENTRY_DSN",),
        "DSN",
        "unset",
        "Where Sentry events and transactions go. Unset: no Sentry client (metrics and traces still work).",
    ),
    Setting(
        "sentry_enabled",
        ("SENTRY_ENABLED",),
        "bool",
        "true when a DSN or Spotlight is set",
        "Turns the Sentry side on or off without removing the DSN.",
    ),
    Setting(
        "traces_sample_rate",
        ("SENTRY_TRACES_SAMPLE_RATE",),
        "float 0..1",
        "production 0.01, staging 0.1, development 1.0",
        "Share of new traces sampled; one decision for OTel spans and Sentry transactions "
        "(callers' decisions are followed). `OTEL_TRACES_SAMPLER` replaces it when set.",
    ),
    Setting(
        "profiles_sample_rate",
        ("SENTRY_PROFILES_SAMPLE_RATE",),
        "float 0..1",
        "production 0.01, staging 0.5, development 0",
        "Share of processes that run Sentry's continuous profiler (a per-process decision).",
    ),
    Setting(
        "release_sha",
        _RELEASE_VARS,
        "str",
        "`git rev-parse HEAD` in the working directory, else `unknown`",
        "The release's git SHA, the first of these set: `service.version` and the Sentry release `{service}@{sha}`.",
    ),
    Setting(
        "service_name",
        ("OTEL_SERVICE_NAME", "SERVICE_NAME"),
        "str",
        "gatewayz-api",
        "`service.name` on every signal and the `service` tag; `OTEL_SERVICE_NAME` wins, then "
        "`service.name` in `OTEL_RESOURCE_ATTRIBUTES`, then `SERVICE_NAME`.",
    ),
    Setting(
        "environment",
        ("APP_ENV",),
        "development | staging | production",
        "development",
        "`deployment.environment.name` and the Sentry environment (`deployment.environment.name` in "
        "`OTEL_RESOURCE_ATTRIBUTES` wins); picks the per-environment defaults.",
    ),
    Setting(
        "spotlight",
        ("SENTRY_SPOTLIGHT",),
        "bool or URL",
        "off",
        "Also send events to a local Spotlight viewer (`npx @spotlightjs/spotlight`).",
    ),
    Setting(
        "capture_expected_errors",
        ("GATEWAYZ_CAPTURE_EXPECTED_ERRORS",),
        "bool",
        "false in production, true elsewhere",
        "Send 404s and validation errors to Sentry. They are counted in metrics either way.",
    ),
    Setting(
        "fingerprint_rules",
        ("GATEWAYZ_FINGERPRINT_RULES",),
        "list of `TypeSubstring=group`",
        "empty",
        "Extra fingerprint rules, checked before the spec's, e.g. `Timeout=provider_error`.",
    ),
    Setting(
        "impact_rules",
        ("GATEWAYZ_IMPACT_RULES",),
        "list of `route-substring=high|medium|low`",
        "empty",
        "Extra user-impact rules, checked before the spec's, e.g. `/admin=medium`.",
    ),
    Setting(
        "scrub_keys",
        ("GATEWAYZ_SCRUB_KEYS",),
        "list of regexes",
        "empty",
        "Extra key patterns whose values are always redacted (added to the built-in ones).",
    ),
    Setting(
        "scrub_safe_keys",
        ("GATEWAYZ_SCRUB_SAFE_KEYS",),
        "list of regexes",
        "empty",
        "Keys never redacted by key name (values are still checked for secrets).",
    ),
    Setting(
        "propagation_targets",
        ("GATEWAYZ_TRACE_PROPAGATION_TARGETS",),
        "list of host regexes",
        "empty",
        "Hosts that receive `traceparent`, `sentry-trace` and `baggage` on outgoing requests. "
        "Empty: none do, so third-party LLM providers never see our trace ids.",
    ),
    Setting(
        "span_pii",
        ("GATEWAYZ_SPAN_PII",),
        "bool",
        "false",
        "Put the user's email on spans (`user.email`). Sentry's user always has it.",
    ),
    Setting(
        "include_local_variables",
        ("GATEWAYZ_INCLUDE_LOCAL_VARIABLES",),
        "bool",
        "true",
        "Attach stack-frame local variables (scrubbed) to Sentry events.",
    ),
    Setting(
        "shutdown_timeout",
        ("GATEWAYZ_SHUTDOWN_TIMEOUT",),
        "seconds",
        "5",
        "How long shutdown waits to flush pending events and spans.",
    ),
    Setting(
        "metrics_dir",
        ("GATEWAYZ_METRICS_DIR",),
        "path",
        "a fresh temporary directory per server start",
        "Where worker processes leave their metric snapshots for the process serving `/metrics`.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load_settings`."""

    sentry_dsn: str | None = None
    sentry_enabled: bool = False
    traces_sample_rate: float = 1.0
    profiles_sample_rate: float = 0.0
    release_sha: str = "unknown"
    release_source: str = "default"
    service_name: str = "gatewayz-api"
    environment: str = "development"
    spotlight: bool | str = False
    capture_expected_errors: bool = True
    fingerprint_rules: tuple[tuple[str, str], ...] = ()
    impact_rules: tuple[tuple[str, str], ...] = ()
    scrub_keys: tuple[str, ...] = ()
    scrub_safe_keys: tuple[str, ...] = ()
    propagation_targets: tuple[str, ...] = ()
    span_pii: bool = False
    include_local_variables: bool = True
    shutdown_timeout: float = 5.0
    metrics_dir: str | None = None
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def release(self) -> str:
        """The Sentry release id, as the spec writes it."""
        return f"{self.service_name}@{self.release_sha}"


def _resource_attributes(env: Mapping[str, str]) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k=v``) the way the SDK does, leniently."""
    attributes: dict[str, str] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = value.strip()
    return attributes


def _git_sha(cwd: str | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,64}", sha) else None


class _Reader:
    """Reads one variable at a time, turning parse errors into :class:`Problem`s."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def get(self, name: str, parse: Callable[[str], Any], default: Any, consequence: str) -> Any:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw)
        except SettingError as exc:
            self.problems.append(Problem(name, str(exc), consequence))
            return _INVALID


_INVALID: Any = object()


def load_settings(env: Mapping[str, str], cwd: str | None = None) -> Settings:
    """Resolve every setting from ``env`` (injected, so tests pass a dict)."""
    r = _Reader(env)
    resource_attrs = _resource_attributes(env)

    environment = resource_attrs.get("deployment.environment.name") or r.get(
        "APP_ENV", _parse_environment, "development", "using development"
    )
    if environment is _INVALID:
        environment = "development"

    service_name = (
        env.get("OTEL_SERVICE_NAME", "").strip()
        or resource_attrs.get("service.name")
        or env.get("SERVICE_NAME", "").strip()
        or "gatewayz-api"
    )

    release_sha, release_source = "unknown", "default"
    for name in _RELEASE_VARS:
        if env.get(name, "").strip():
            release_sha, release_source = env[name].strip(), name
            break
    else:
        sha = _git_sha(cwd)
        if sha:
            release_sha, release_source = sha, "git"

    dsn = r.get("SENTRY_DSN", _parse_dsn, None, "Sentry is disabled")
    spotlight_raw = env.get("SENTRY_SPOTLIGHT", "").strip()
    spotlight: bool | str = False
    if spotlight_raw:
        if spotlight_raw.startswith(("http://", "https://")):
            spotlight = spotlight_raw
        else:
            parsed = r.get("SENTRY_SPOTLIGHT", _parse_bool, False, "Spotlight is disabled")
            spotlight = False if parsed is _INVALID else parsed
    enabled = r.get("SENTRY_ENABLED", _parse_bool, True, "Sentry is disabled")
    sentry_enabled = enabled is True and dsn is not _INVALID and (dsn is not None or bool(spotlight))

    traces = r.get(
        "SENTRY_TRACES_SAMPLE_RATE", _parse_rate, _TRACE_RATE_BY_ENV[environment], "tracing is disabled (rate 0)"
    )
    profiles = r.get(
        "SENTRY_PROFILES_SAMPLE_RATE", _parse_rate, _PROFILE_RATE_BY_ENV[environment], "profiling is disabled"
    )

    def keep(value: Any, default: Any) -> Any:
        return default if value is _INVALID else value

    return Settings(
        sentry_dsn=None if dsn is _INVALID else dsn,
        sentry_enabled=sentry_enabled,
        traces_sample_rate=keep(traces, 0.0),
        profiles_sample_rate=keep(profiles, 0.0),
        release_sha=release_sha,
        release_source=release_source,
        service_name=service_name,
        environment=environment,
        spotlight=spotlight,
        capture_expected_errors=keep(
            r.get(
                "GATEWAYZ_CAPTURE_EXPECTED_ERRORS",
                _parse_bool,
                environment != "production",
                "using the per-environment default",
            ),
            environment != "production",
        ),
        fingerprint_rules=keep(r.get("GATEWAYZ_FINGERPRINT_RULES", _parse_rules, (), "extra rules ignored"), ()),
        impact_rules=keep(r.get("GATEWAYZ_IMPACT_RULES", _parse_impact_rules, (), "extra rules ignored"), ()),
        scrub_keys=keep(r.get("GATEWAYZ_SCRUB_KEYS", _parse_regexes, (), "extra patterns ignored"), ()),
        scrub_safe_keys=keep(r.get("GATEWAYZ_SCRUB_SAFE_KEYS", _parse_regexes, (), "safe keys ignored"), ()),
        propagation_targets=keep(
            r.get("GATEWAYZ_TRACE_PROPAGATION_TARGETS", _parse_regexes, (), "trace headers go to no host"),
            (),
        ),
        span_pii=keep(r.get("GATEWAYZ_SPAN_PII", _parse_bool, False, "email kept off spans"), False),
        include_local_variables=keep(
            r.get("GATEWAYZ_INCLUDE_LOCAL_VARIABLES", _parse_bool, True, "local variables are not sent"), False
        ),
        shutdown_timeout=keep(r.get("GATEWAYZ_SHUTDOWN_TIMEOUT", _parse_positive_float, 5.0, "using 5 seconds"), 5.0),
        metrics_dir=env.get("GATEWAYZ_METRICS_DIR") or None,
        problems=tuple(r.problems),
    )


def settings_table_markdown() -> str:
    """The README's configuration table, generated from :data:`SETTINGS`."""
    lines = ["| Env var | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        names = " then ".join(f"`{name}`" for name in s.env)
        lines.append(f"| {names} | {s.type} | {s.default} | {s.meaning} |")
    return "\n".join(lines)
