"""The settings: one declaration per setting (sources, parser, default, meaning, what a bad value does).

Each field of :class:`Settings` carries its declaration; the loader, :data:`SETTINGS` and the
README's configuration table are derived from them. A bad value never raises: it becomes a
:class:`Problem` naming the variable, and only the part it governs is disabled or falls back.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .parsers import (
    PriceEntry,
    SettingError,
    exporter_parser,
    parse_bool,
    parse_dsn,
    parse_environment,
    parse_event_budget,
    parse_host,
    parse_impact_rules,
    parse_keep_slower_than,
    parse_port,
    parse_prices_file,
    parse_propagators,
    parse_rate,
    parse_regexes,
    parse_release,
    parse_rules,
    parse_sampler,
    parse_spotlight,
    parse_status_codes,
    parse_text,
    parse_timeout,
    parse_trace_route,
    parse_writable_dir,
)

RESOURCE_SOURCE = "resource:"
_SAME: Any = object()


@dataclass(frozen=True)
class Problem:
    """One bad setting: the variable, what is wrong, and what was disabled because of it."""

    variable: str
    reason: str
    consequence: str

    def __str__(self) -> str:
        return f"otel_gatewayz: {self.variable}: {self.reason}; {self.consequence}"


@dataclass(frozen=True)
class Declaration:
    """Where one setting comes from and what it means.

    ``sources`` are tried in order: environment variables, or ``resource:<key>`` for a key of
    ``OTEL_RESOURCE_ATTRIBUTES`` (taken verbatim: the user's own resource). ``by_environment``
    gives per-environment defaults; ``derive`` computes a default from the environment and the
    working directory. ``invalid`` is the value a bad input leaves (default: the default).
    """

    sources: tuple[str, ...]
    parse: Callable[[str], Any]
    type: str
    meaning: str
    on_error: str
    default: Any = None
    default_doc: str | None = None
    by_environment: Mapping[str, Any] | None = None
    derive: Callable[[str, str | None], Any] | None = None
    invalid: Any = _SAME
    field: str = ""

    @property
    def env(self) -> tuple[str, ...]:
        """The environment variables among the sources."""
        return tuple(source for source in self.sources if not source.startswith(RESOURCE_SOURCE))

    def default_for(self, environment: str, cwd: str | None) -> Any:
        if self.derive is not None:
            return self.derive(environment, cwd)
        if self.by_environment is not None:
            return self.by_environment.get(environment, self.by_environment["development"])
        return self.default

    def documented_default(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        if self.by_environment is not None:
            return ", ".join(f"{env} {_doc_value(value)}" for env, value in self.by_environment.items())
        return "unset" if self.default is None else _doc_value(self.default)


def _doc_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "empty" if not value else ",".join(map(str, value))
    return str(value)


def setting(**declaration: Any) -> Any:
    """A dataclass field carrying its :class:`Declaration`."""
    decl = Declaration(**declaration)
    default = decl.by_environment["development"] if decl.by_environment is not None else decl.default
    return field(default=default, metadata={"setting": decl})


def _git_sha(cwd: str | None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,64}", sha) else None


def _release_from_git(environment: str, cwd: str | None) -> str:
    return _git_sha(cwd) or "unknown"


_PRODUCTION_ONLY_OFF = {"production": False, "staging": True, "development": True}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; build with :func:`load_settings`."""

    environment: str = setting(
        sources=("resource:deployment.environment.name", "APP_ENV", "SENTRY_ENVIRONMENT"),
        parse=parse_environment,
        type="development | staging | production",
        default="development",
        on_error="using development",
        meaning="`deployment.environment.name` and the Sentry environment: `deployment.environment.name` in "
        "`OTEL_RESOURCE_ATTRIBUTES` wins, then `APP_ENV`, then sentry-sdk's `SENTRY_ENVIRONMENT`; picks the "
        "per-environment defaults.",
    )
    sentry_dsn: str | None = setting(
        sources=("SENTRY_DSN",),
        parse=parse_dsn,
        type="DSN",
        on_error="Sentry is disabled",
        meaning="Where Sentry events and transactions go. Unset: no Sentry client (metrics and traces still work).",
    )
    sentry_enabled: bool = setting(
        sources=("SENTRY_ENABLED",),
        parse=parse_bool,
        type="bool",
        default=True,
        invalid=False,
        default_doc="true when a DSN or Spotlight is set",
        on_error="Sentry is disabled",
        meaning="Turns the Sentry side on or off without removing the DSN.",
    )
    traces_sample_rate: float = setting(
        sources=("SENTRY_TRACES_SAMPLE_RATE",),
        parse=parse_rate,
        type="float 0..1",
        by_environment={"production": 0.01, "staging": 0.1, "development": 1.0},
        invalid=0.0,
        on_error="tracing is disabled (rate 0)",
        meaning="Share of new traces sampled; one decision for OTel spans and Sentry transactions "
        "(callers' decisions are followed). `OTEL_TRACES_SAMPLER` replaces it when set.",
    )
    keep_traces: bool = setting(
        sources=("GATEWAYZ_KEEP_TRACES",),
        parse=parse_bool,
        type="bool",
        default=True,
        on_error="using true",
        meaning="Decide each request's trace when its local root span ends: every span is recorded and held "
        "until then, and the trace is exported (OTLP and Sentry alike) when the head sampled it, the request "
        "errored (a recorded error, an unhandled exception, a 5xx) or it was slower than "
        "`GATEWAYZ_KEEP_SLOWER_THAN`; the rest is dropped. The kept trace's root says why "
        "(`gatewayz.sampling.kept`); sampling data (Sentry DSC, `tracestate`) stays the head's. Off: pure head "
        "sampling.",
    )
    keep_slower_than: float | None = setting(
        sources=("GATEWAYZ_KEEP_SLOWER_THAN",),
        parse=parse_keep_slower_than,
        type="seconds or `off`",
        default=30.0,
        default_doc="30",
        on_error="using 30 seconds",
        meaning="With `GATEWAYZ_KEEP_TRACES`, a request slower than this keeps its trace. 30 s is past a chat "
        "completion's usual p99 (a few seconds to ~20 s), so it keeps the outliers, not every long completion.",
    )
    traces_sampler: str | None = setting(
        sources=("OTEL_TRACES_SAMPLER",),
        parse=parse_sampler,
        type="sampler name",
        on_error="using the parent-based `SENTRY_TRACES_SAMPLE_RATE` sampler",
        meaning="The SDK's standard sampler variable (with `OTEL_TRACES_SAMPLER_ARG`); when set, it replaces "
        "our parent-based ratio sampler.",
    )
    profiles_sample_rate: float = setting(
        sources=("SENTRY_PROFILES_SAMPLE_RATE",),
        parse=parse_rate,
        type="float 0..1",
        by_environment={"production": 0.01, "staging": 0.5, "development": 0.0},
        invalid=0.0,
        on_error="profiling is disabled",
        meaning="Share of processes that run Sentry's continuous profiler (a per-process decision).",
    )
    release_sha: str = setting(
        sources=("resource:service.version", "RELEASE_SHA", "VERCEL_GIT_COMMIT_SHA", "RAILWAY_GIT_COMMIT_SHA"),
        parse=parse_release,
        type="str",
        default="unknown",
        derive=_release_from_git,
        default_doc="the version in `SENTRY_RELEASE`, else `git rev-parse HEAD` in the working directory, "
        "else `unknown`",
        on_error="using `unknown`",
        meaning="The release's git SHA, the first of these set (`service.version` in `OTEL_RESOURCE_ATTRIBUTES` "
        "wins): `service.version` on every signal and the Sentry release `{service}@{sha}`.",
    )
    sentry_release: str | None = setting(
        sources=("SENTRY_RELEASE",),
        parse=parse_release,
        type="str",
        default_doc="`{service}@{sha}`",
        on_error="using `{service}@{sha}`",
        meaning="sentry-sdk's own variable: the Sentry release id verbatim. Without a SHA variable, its part "
        "after the last `@` is the SHA.",
    )
    service_name: str = setting(
        sources=("OTEL_SERVICE_NAME", "resource:service.name", "SERVICE_NAME"),
        parse=parse_text,
        type="str",
        default="gatewayz-api",
        on_error="using gatewayz-api",
        meaning="`service.name` on every signal and the `service` tag; `OTEL_SERVICE_NAME` wins, then "
        "`service.name` in `OTEL_RESOURCE_ATTRIBUTES`, then `SERVICE_NAME`.",
    )
    spotlight: bool | str = setting(
        sources=("SENTRY_SPOTLIGHT",),
        parse=parse_spotlight,
        type="bool or URL",
        default=False,
        default_doc="off",
        on_error="Spotlight is disabled",
        meaning="Also send events to a local Spotlight viewer (`scripts/spotlight.sh`, as the demo does).",
    )
    sentry_traces_via: str = setting(
        sources=("GATEWAYZ_SENTRY_TRACES_VIA",),
        parse=parse_trace_route,
        type="auto, spans, envelope, otlp or none",
        default="auto",
        on_error="using auto",
        meaning="How sampled traces reach Sentry: `spans`, one envelope of span v2 items per request, as "
        "sentry-sdk 3 streams them (sentry.io); `envelope`, one transaction envelope per request (every Sentry, "
        "self-hosted too, and Spotlight); `otlp`, batched spans to the project's OTLP intake "
        "(`/api/<id>/integration/otlp/v1/traces`, sentry.io; costs what plain OTel's export costs); `none`, errors "
        "only, no traces (when a collector tier decides and stores them). `auto`: for a "
        "`*.sentry.io` DSN without Spotlight, `spans` on sentry-sdk 3 and `otlp` on 2.x; else `envelope`.",
    )
    capture_expected_errors: bool = setting(
        sources=("GATEWAYZ_CAPTURE_EXPECTED_ERRORS",),
        parse=parse_bool,
        type="bool",
        by_environment=_PRODUCTION_ONLY_OFF,
        default_doc="false in production, true elsewhere",
        on_error="using the per-environment default",
        meaning="Send 404s and validation errors to Sentry. They are counted in metrics either way.",
    )
    failed_request_status_codes: tuple[tuple[int, int], ...] = setting(
        sources=("GATEWAYZ_FAILED_REQUEST_STATUS_CODES",),
        parse=parse_status_codes,
        type="list of codes or ranges",
        default=((500, 599),),
        default_doc="500-599",
        on_error="using 500-599",
        meaning="Answers with these statuses are errors: the exception behind them (an `HTTPException(502)`, or any "
        "exception a handler answers with them) is one Sentry event and one count, never an expected error.",
    )
    fingerprint_rules: tuple[tuple[str, str], ...] = setting(
        sources=("GATEWAYZ_FINGERPRINT_RULES",),
        parse=parse_rules,
        type="list of `TypeSubstring=group`",
        default=(),
        on_error="extra rules ignored",
        meaning="Extra fingerprint rules, checked before the spec's, e.g. `Timeout=provider_error`.",
    )
    impact_rules: tuple[tuple[str, str], ...] = setting(
        sources=("GATEWAYZ_IMPACT_RULES",),
        parse=parse_impact_rules,
        type="list of `route-substring=high|medium|low`",
        default=(),
        on_error="extra rules ignored",
        meaning="Extra user-impact rules, checked before the spec's, e.g. `/admin=medium`.",
    )
    scrub_keys: tuple[str, ...] = setting(
        sources=("GATEWAYZ_SCRUB_KEYS",),
        parse=parse_regexes,
        type="list of regexes",
        default=(),
        on_error="extra patterns ignored",
        meaning="Extra key patterns whose values are always redacted (added to the built-in ones).",
    )
    scrub_safe_keys: tuple[str, ...] = setting(
        sources=("GATEWAYZ_SCRUB_SAFE_KEYS",),
        parse=parse_regexes,
        type="list of regexes",
        default=(),
        on_error="safe keys ignored",
        meaning="Keys never redacted by key name (values are still checked for secrets).",
    )
    propagation_targets: tuple[str, ...] = setting(
        sources=("GATEWAYZ_TRACE_PROPAGATION_TARGETS",),
        parse=parse_regexes,
        type="list of host regexes",
        default=(),
        on_error="trace headers go to no host",
        meaning="Hosts that receive `traceparent`, `tracestate`, `sentry-trace` and `baggage` on outgoing requests "
        "(matched against the whole host name). Empty: none do, so third-party LLM providers never see our trace "
        "ids; a request whose host is not known gets none either.",
    )
    span_pii: bool = setting(
        sources=("GATEWAYZ_SPAN_PII",),
        parse=parse_bool,
        type="bool",
        default=False,
        on_error="email kept off spans",
        meaning="Put the user's email on spans (`user.email`). Sentry's user always has it.",
    )
    send_default_pii: bool = setting(
        sources=("SENTRY_SEND_DEFAULT_PII",),
        parse=parse_bool,
        type="bool",
        default=False,
        invalid=False,
        on_error="PII stays out of Sentry",
        meaning="Send the end user's IP address and user agent to Sentry (request headers, `env.REMOTE_ADDR`, "
        "span data of errors and transactions); sentry-sdk's `send_default_pii`. Off: they never leave the process.",
    )
    include_local_variables: bool = setting(
        sources=("GATEWAYZ_INCLUDE_LOCAL_VARIABLES",),
        parse=parse_bool,
        type="bool",
        default=True,
        invalid=False,
        on_error="local variables are not sent",
        meaning="Attach the local variables of in-app stack frames (your code, not libraries) to Sentry "
        "events: scrubbed, each value rendered within a size bound.",
    )
    error_event_budget: tuple[int, float] | None = setting(
        sources=("GATEWAYZ_ERROR_EVENT_BUDGET",),
        parse=parse_event_budget,
        type="`N/<seconds>s` or `unlimited`",
        default=(10, 60.0),
        default_doc="10/60s",
        on_error="using 10/60s",
        meaning="Storm control: at most N full Sentry events per fingerprint per window. Past it, errors are "
        "still counted in metrics but not built; each is answered with the id of its group's summary event, "
        "sent once per window and at shutdown (with a client report), which says how many and lists their kept "
        "traces; the count also reaches the group's next event. With `GATEWAYZ_KEEP_TRACES`, 10 N of them per "
        "fingerprint per window keep their traces.",
    )
    shutdown_timeout: float = setting(
        sources=("GATEWAYZ_SHUTDOWN_TIMEOUT",),
        parse=parse_timeout,
        type="seconds (0..300]",
        default=5.0,
        default_doc="5",
        on_error="using 5 seconds",
        meaning="How long shutdown waits to flush pending events and spans.",
    )
    metrics_dir: str | None = setting(
        sources=("GATEWAYZ_METRICS_DIR",),
        parse=parse_writable_dir,
        type="path",
        default_doc="a fresh temporary directory per server start",
        on_error="using a fresh temporary directory",
        meaning="Where worker processes leave their metric snapshots for the process serving `/metrics`.",
    )
    metrics_write_interval: float = setting(
        sources=("GATEWAYZ_METRICS_WRITE_INTERVAL",),
        parse=parse_timeout,
        type="seconds (0..300]",
        default=1.0,
        default_doc="1",
        on_error="using 1 second",
        meaning="How often each worker writes its metric snapshot: how fresh the other workers' series on `/metrics` "
        "are. Counts survive a killed worker whatever the interval (each one is journaled as it is counted).",
    )
    prometheus_host: str = setting(
        sources=("OTEL_EXPORTER_PROMETHEUS_HOST",),
        parse=parse_host,
        type="host",
        default="localhost",
        on_error="using localhost",
        meaning="The address `/metrics` is served on.",
    )
    prometheus_port: int | None = setting(
        sources=("OTEL_EXPORTER_PROMETHEUS_PORT",),
        parse=parse_port,
        type="port 1..65535",
        default=9464,
        invalid=None,
        on_error="the Prometheus endpoint is disabled (metrics are still counted and exported)",
        meaning="The port `/metrics` is served on; a port taken by a sibling worker is served by that worker, one "
        "taken by another program is one warning naming the program (the process serves it once it frees).",
    )
    traces_exporters: tuple[str, ...] = setting(
        sources=("OTEL_TRACES_EXPORTER",),
        parse=exporter_parser("traces"),
        type="exporter names",
        default=(),
        default_doc="`otlp_proto_http` when an OTLP endpoint is set, else none",
        on_error="the unknown names are left out (Sentry and metrics keep working)",
        meaning="The SDK's span exporters (entry-point names), validated before the SDK sees them.",
    )
    metrics_exporters: tuple[str, ...] = setting(
        sources=("OTEL_METRICS_EXPORTER",),
        parse=exporter_parser("metrics"),
        type="exporter names",
        default=(),
        default_doc="`gatewayz_prometheus`, plus `otlp_proto_http` when an OTLP endpoint is set",
        on_error="the unknown names are left out",
        meaning="The SDK's metric exporters and readers, validated before the SDK sees them.",
    )
    logs_exporters: tuple[str, ...] = setting(
        sources=("OTEL_LOGS_EXPORTER",),
        parse=exporter_parser("logs"),
        type="exporter names",
        default=(),
        default_doc="`otlp_proto_http` when an OTLP endpoint is set, else none",
        on_error="the unknown names are left out",
        meaning="The SDK's log exporters, validated before the SDK sees them.",
    )
    propagators: tuple[str, ...] | None = setting(
        sources=("OTEL_PROPAGATORS",),
        parse=parse_propagators,
        type="propagator names",
        default_doc="ours: `sentry,tracecontext,baggage`",
        on_error="using ours",
        meaning="The SDK's propagator list (`tracecontext`, `baggage`, `b3`, `b3multi`, our `sentry`, `none`); "
        "outgoing headers stay behind `GATEWAYZ_TRACE_PROPAGATION_TARGETS` whatever the list. An unknown name "
        "stops `opentelemetry-instrument` itself before any distro loads.",
    )
    capture_message_content: bool = setting(
        sources=("GATEWAYZ_CAPTURE_MESSAGE_CONTENT",),
        parse=parse_bool,
        type="bool",
        default=False,
        on_error="content stays out",
        meaning="Let prompt and completion content (`gen_ai.prompt*`, `gen_ai.*.messages`, `llm.prompts`, "
        "`content=` in request models' reprs) reach spans, events and logs; on, it also sets an unset "
        "`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` to `span_only`, so the official GenAI "
        "instrumentations record it. Off: redacted everywhere.",
    )
    console: bool = setting(
        sources=("GATEWAYZ_CONSOLE",),
        parse=parse_bool,
        type="bool",
        default=False,
        on_error="no console output",
        meaning="One readable, scrubbed line per finished span and per recorded error on stderr, for a local "
        "run with no viewer (the demo turns it on when Spotlight is not running).",
    )
    log_correlation: bool = setting(
        sources=("GATEWAYZ_LOG_CORRELATION",),
        parse=parse_bool,
        type="bool",
        default=True,
        on_error="log lines are left as they are",
        meaning="Append `trace_id=` to uvicorn's access lines and `trace_id=` / `sentry_event_id=` to the line "
        "logging an unhandled error.",
    )
    spend: bool = setting(
        sources=("GATEWAYZ_SPEND",),
        parse=parse_bool,
        type="bool",
        default=True,
        on_error="tokens and cost are counted",
        meaning="Read every provider answer's token usage as it passes and price it: the `gatewayz_gen_ai_tokens_total`"
        " / `_cost_usd_total` / `_unpriced_calls_total` series and the `gen_ai.usage.*` span attributes "
        '(see "Metrics").',
    )
    prices_file: tuple[PriceEntry, ...] = setting(
        sources=("GATEWAYZ_PRICES_FILE",),
        parse=parse_prices_file,
        type="path to JSON",
        default=(),
        default_doc="unset",
        on_error="calls are priced with genai-prices' table alone",
        meaning="Negotiated prices that win over genai-prices' table: "
        '`{"<provider>": {"<model>": {"input_mtok": 0.12, "output_mtok": 0.48, "cache_read_mtok": 0.06}}}` '
        "(USD per million tokens, genai-prices' price keys; `*` as the provider matches any; a model is the name "
        "the app or the answer used, or genai-prices' id for it). Read at start-up.",
    )
    # Derived while loading, not read from a variable of their own.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def release(self) -> str:
        """The Sentry release id, as the spec writes it (``SENTRY_RELEASE`` verbatim when set)."""
        return self.sentry_release or f"{self.service_name}@{self.release_sha}"

    @property
    def release_source(self) -> str:
        """Which variable the release came from (``git`` or ``default`` without one)."""
        return self.sources.get("release_sha") or ("default" if self.release_sha == "unknown" else "git")


def _declarations() -> tuple[Declaration, ...]:
    found = []
    for f in fields(Settings):
        decl = f.metadata.get("setting")
        if isinstance(decl, Declaration):
            found.append(Declaration(**{**decl.__dict__, "field": f.name}))
    return tuple(found)


SETTINGS: tuple[Declaration, ...] = _declarations()


def resource_attributes_of(env: Mapping[str, str]) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k=v``) the way the SDK does, leniently."""
    attributes: dict[str, str] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = value.strip()
    return attributes


def _resolve(
    decl: Declaration,
    env: Mapping[str, str],
    resource: Mapping[str, str],
    environment: str,
    cwd: str | None,
    problems: list[Problem],
) -> tuple[Any, str | None]:
    """``(value, source)``: the first source that is set, parsed; the default when none is."""
    for source in decl.sources:
        if source.startswith(RESOURCE_SOURCE):
            value = resource.get(source[len(RESOURCE_SOURCE) :], "").strip()
            if value:
                return value, source
            continue
        raw = env.get(source)
        if raw is None or raw.strip() == "":
            continue
        try:
            return decl.parse(raw), source
        except SettingError as exc:
            problems.append(Problem(source, str(exc), decl.on_error))
            if exc.fallback is not None:
                return exc.fallback, source
            return (decl.default_for(environment, cwd) if decl.invalid is _SAME else decl.invalid), source
    return decl.default_for(environment, cwd), None


def load_settings(env: Mapping[str, str], cwd: str | None = None) -> Settings:
    """Resolve every setting from ``env`` (injected, so tests pass a dict)."""
    resource = resource_attributes_of(env)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    by_field = {decl.field: decl for decl in SETTINGS}
    environment, _ = _resolve(by_field["environment"], env, resource, "development", cwd, problems)
    for decl in SETTINGS:
        if decl.field == "environment":
            values["environment"] = environment
            continue
        values[decl.field], source = _resolve(decl, env, resource, environment, cwd, problems)
        if source is not None:
            sources[decl.field] = source
    if "release_sha" not in sources and values["sentry_release"]:
        values["release_sha"] = values["sentry_release"].rsplit("@", 1)[-1]
        sources["release_sha"] = "SENTRY_RELEASE"
    values["sentry_enabled"] = bool(values["sentry_enabled"]) and (
        values["sentry_dsn"] is not None or bool(values["spotlight"])
    )
    return Settings(**values, sources=sources, problems=tuple(problems))


def settings_table_markdown() -> str:
    """The README's configuration table, generated from :data:`SETTINGS`."""
    lines = [
        "| Env var | Type | Default | Meaning | A bad value |",
        "| --- | --- | --- | --- | --- |",
    ]
    for decl in SETTINGS:
        names = " then ".join(f"`{name}`" for name in decl.env)
        lines.append(f"| {names} | {decl.type} | {decl.documented_default()} | {decl.meaning} | {decl.on_error} |")
    return "\n".join(lines)
