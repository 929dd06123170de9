"""Parsers for setting values: each returns the typed value or raises :class:`SettingError` saying why.

A message never echoes a value that may be secret (DSNs carry the project's key).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

from genai_prices.data_units import unit_data
from sentry_sdk.utils import BadDsn, Dsn

ENVIRONMENTS = ("development", "staging", "production")
_ENV_ALIASES = {"dev": "development", "prod": "production", "stage": "staging", "test": "development"}
_MALFORMED_DSN = "malformed DSN (it needs http(s), a public key, a host, a port in 1..65535 and a project id)"
MAX_TIMEOUT = 300.0
# Samplers the SDK knows by name (OTEL_TRACES_SAMPLER); entry points may add more.
SDK_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)


class SettingError(ValueError):
    """A value that cannot be used; the message says why without echoing secrets.

    ``fallback``, when given, is the usable part of the value (e.g. the known exporters of a list).
    """

    def __init__(self, message: str, fallback: object = None) -> None:
        super().__init__(message)
        self.fallback = fallback


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{raw!r} is not a boolean (use true or false)")


def _finite(raw: str, what: str = "a number") -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{raw!r} is not {what}") from None
    if not math.isfinite(value):
        raise SettingError(f"{raw!r} is not a finite number")
    return value


def parse_rate(raw: str) -> float:
    value = _finite(raw, "a number between 0 and 1")
    if not 0.0 <= value <= 1.0:
        raise SettingError(f"{raw!r} is outside 0..1")
    return value


def parse_timeout(raw: str) -> float:
    value = _finite(raw)
    if value <= 0:
        raise SettingError(f"{raw!r} must be greater than 0")
    if value > MAX_TIMEOUT:
        raise SettingError(f"{raw!r} must be at most {MAX_TIMEOUT:g} seconds")
    return value


def parse_port(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingError(f"{raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise SettingError(f"{raw!r} is outside 1..65535")
    return value


def parse_host(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,253}", value):
        raise SettingError(f"{raw!r} is not a host name or address")
    return value


def parse_dsn(raw: str) -> str:
    try:
        dsn = Dsn(raw.strip())
        port = dsn.port
    except (BadDsn, ValueError):
        # Never echo the value: a DSN carries the project's public key.
        raise SettingError(_MALFORMED_DSN) from None
    if dsn.scheme not in ("http", "https") or not dsn.host or not 1 <= port <= 65535:
        raise SettingError(_MALFORMED_DSN)
    return raw.strip()


def parse_spotlight(raw: str) -> bool | str:
    value = raw.strip()
    if value.startswith(("http://", "https://")):
        return value
    return parse_bool(value)


TRACE_ROUTES = ("auto", "spans", "envelope", "otlp", "none")


def parse_trace_route(raw: str) -> str:
    value = raw.strip().lower()
    if value not in TRACE_ROUTES:
        raise SettingError(f"{raw!r} is not one of {', '.join(TRACE_ROUTES)}")
    return value


def parse_environment(raw: str) -> str:
    value = raw.strip().lower()
    value = _ENV_ALIASES.get(value, value)
    if value not in ENVIRONMENTS:
        raise SettingError(f"{raw!r} is not one of {', '.join(ENVIRONMENTS)}")
    return value


def parse_text(raw: str) -> str:
    return raw.strip()


def parse_release(raw: str) -> str:
    """A release (or SHA) Sentry accepts: no whitespace or control characters, no slashes, <= 200 chars."""
    value = raw.strip()
    if value in (".", "..") or len(value) > 200 or re.search(r"[\s/\\\x00-\x1f\x7f]", value):
        raise SettingError(
            f"{raw!r} is not a valid release (no whitespace, slashes or control characters, at most 200 characters)"
        )
    return value


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_rules(raw: str) -> tuple[tuple[str, str], ...]:
    """``pattern=value,pattern=value`` pairs, in order."""
    rules: list[tuple[str, str]] = []
    for item in parse_list(raw):
        pattern, sep, value = item.partition("=")
        if not sep or not pattern.strip() or not value.strip():
            raise SettingError(f"rule {item!r} is not of the form pattern=value")
        rules.append((pattern.strip(), value.strip()))
    return tuple(rules)


def parse_impact_rules(raw: str) -> tuple[tuple[str, str], ...]:
    rules = parse_rules(raw)
    for _, level in rules:
        if level not in ("high", "medium", "low"):
            raise SettingError(f"impact {level!r} is not one of high, medium, low")
    return rules


def parse_status_codes(raw: str) -> tuple[tuple[int, int], ...]:
    """``500-599,429`` as inclusive ranges of HTTP status codes."""
    ranges: list[tuple[int, int]] = []
    for item in parse_list(raw):
        low, sep, high = item.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise SettingError(f"{item!r} is not a status code or a range like 500-599") from None
        if not 100 <= first <= last <= 599:
            raise SettingError(f"{item!r} is not within 100..599")
        ranges.append((first, last))
    return tuple(ranges)


def parse_regexes(raw: str) -> tuple[str, ...]:
    patterns = parse_list(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SettingError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


def parse_writable_dir(raw: str) -> str:
    """A directory this process can write to, or create (checked without creating it)."""
    path = Path(raw.strip()).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise SettingError(f"{raw!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SettingError(f"{raw!r} is not writable by this process")
    return str(path)


def parse_sampler(raw: str) -> str:
    value = raw.strip()
    known = SDK_SAMPLERS | {ep.name for ep in entry_points(group="opentelemetry_traces_sampler")}
    if value not in known:
        raise SettingError(f"{raw!r} is not a known sampler ({', '.join(sorted(known))})")
    return value


def parse_propagators(raw: str) -> tuple[str, ...]:
    names = parse_list(raw)
    if any(name.lower() == "none" for name in names):
        return ()
    known = {ep.name for ep in entry_points(group="opentelemetry_propagator")}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SettingError(
            f"unknown propagator {', '.join(map(repr, unknown))} (installed: {', '.join(sorted(known))})"
        )
    return names


def exporter_parser(signal: str) -> Callable[[str], tuple[str, ...]]:
    """A parser for ``OTEL_<SIGNAL>_EXPORTER``: known entry-point names only."""

    def parse(raw: str) -> tuple[str, ...]:
        names = parse_list(raw)
        if [name.lower() for name in names] == ["none"]:
            return ()
        known = {ep.name for ep in entry_points(group=f"opentelemetry_{signal}_exporter")}
        unknown = [name for name in names if name not in known]
        if unknown:
            hint = " (gRPC export needs `pip install 'otel-gatewayz[grpc]'`)" if "otlp_proto_grpc" in unknown else ""
            raise SettingError(
                f"unknown exporter {', '.join(map(repr, unknown))} (installed: {', '.join(sorted(known))}){hint}",
                fallback=tuple(name for name in names if name in known),
            )
        return names

    return parse


def parse_keep_slower_than(raw: str) -> float | None:
    """Seconds (> 0, at most a day) after which a request's trace is kept, or ``off``."""
    text = raw.strip().lower()
    if text in {"off", "none", "never"}:
        return None
    value = _finite(text.removesuffix("s"))
    if not 0 < value <= 86400:
        raise SettingError(f"{raw!r} needs 0 < seconds <= 86400 (or off)")
    return value


def parse_event_budget(raw: str) -> tuple[int, float] | None:
    """``N/Ts`` (N full events per T seconds), or ``unlimited``/``off`` for no budget."""
    text = raw.strip().lower()
    if text in {"unlimited", "off", "none"}:
        return None
    count_text, sep, window_text = text.partition("/")
    if not sep:
        raise SettingError(f"{raw!r} is not N/<seconds>s (e.g. 10/60s) or unlimited")
    try:
        count = int(count_text.strip())
        window = float(window_text.strip().removesuffix("s"))
    except ValueError:
        raise SettingError(f"{raw!r} is not N/<seconds>s (e.g. 10/60s) or unlimited") from None
    if count < 1 or not 0 < window <= 86400:
        raise SettingError(f"{raw!r} needs N >= 1 and 0 < seconds <= 86400")
    return count, window


# One negotiated price: (provider or "*", model, ((genai-prices price key, USD), ...)).
PriceEntry = tuple[str, str, tuple[tuple[str, Decimal], ...]]


def parse_prices_file(raw: str) -> tuple[PriceEntry, ...]:
    """A JSON file ``{provider: {model: {price key: USD, ...}}}`` of negotiated prices.

    Price keys are genai-prices' (``input_mtok``, ``output_mtok``, ``cache_read_mtok``...: USD per
    million tokens); ``*`` as the provider matches any. Read once, when the settings load.
    """
    path = Path(raw.strip()).expanduser()
    try:
        table = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal, parse_int=Decimal)
    except OSError as exc:
        raise SettingError(f"cannot read {str(path)!r} ({type(exc).__name__})") from None
    except ValueError as exc:
        raise SettingError(f"{str(path)!r} is not JSON ({exc})") from None
    known = {unit["price_key"] for unit in unit_data.values()}
    entries: list[PriceEntry] = []
    if not isinstance(table, dict):
        raise SettingError(f"{str(path)!r} must map providers to models to prices")
    for provider, models in table.items():
        if not isinstance(models, dict):
            raise SettingError(f"{str(path)!r}: {provider!r} must map model names to prices")
        for model, prices in models.items():
            if not isinstance(prices, dict) or not prices:
                raise SettingError(f"{str(path)!r}: {provider}/{model} must map price keys to USD")
            for key, value in prices.items():
                if key not in known:
                    raise SettingError(f"{str(path)!r}: {provider}/{model}: {key!r} is not a genai-prices price key")
                if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                    raise SettingError(f"{str(path)!r}: {provider}/{model}: {key} must be a number >= 0")
            entries.append((str(provider), str(model), tuple(sorted(prices.items()))))
    return tuple(entries)
