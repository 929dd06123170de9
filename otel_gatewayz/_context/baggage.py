"""Baggage and Sentry's dynamic sampling context (DSC): frozen when it comes in, ours when the trace starts here.

Incoming ``baggage``: ``sentry-*`` entries are the caller's DSC; they are kept verbatim in the
context (frozen, as Sentry's SDKs do) and passed on byte for byte. Other entries become
OpenTelemetry baggage and go out as they came (their raw text, unless the app changed a value).
A trace that starts here (or whose caller sent no Sentry baggage) gets a DSC from
:class:`DscSource`: our public key, release, environment, sample rate, the trace's sampling
decision and a ``sample_rand`` derived from the trace id, so that ``sample_rand < sample_rate``
is exactly the OpenTelemetry ratio decision. Outgoing values use Sentry's encoding
(``urllib.parse.quote``, as sentry-sdk writes them), never ``quote_plus``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote, unquote

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.context import Context, create_key, get_current, get_value, set_value
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from .state import RequestState, current_state

BAGGAGE_HEADER = "baggage"
SENTRY_PREFIX = "sentry-"
MAX_HEADER_LENGTH = 8192
MAX_ENTRIES = 180
_INCOMING_DSC = create_key("otel_gatewayz-incoming-dsc")
_RAW_THIRD_PARTY = create_key("otel_gatewayz-raw-baggage")
_TRACE_ID_LIMIT = 1 << 64


@dataclass(frozen=True)
class FrozenDsc:
    """A caller's DSC: its ``sentry-*`` entries as they were written, and their decoded values."""

    raw: tuple[str, ...]
    values: dict[str, str]

    @property
    def trace_id(self) -> str | None:
        return self.values.get("trace_id")

    def sample_rand(self) -> float | None:
        try:
            value = float(self.values.get("sample_rand", ""))
        except ValueError:
            return None
        return value if 0.0 <= value < 1.0 else None


def incoming_dsc(context: Context | None = None) -> FrozenDsc | None:
    """The caller's frozen DSC in ``context`` (the current one by default), if it sent one."""
    value = get_value(_INCOMING_DSC, context)
    return value if isinstance(value, FrozenDsc) else None


def parse_baggage(header: str) -> tuple[FrozenDsc | None, list[tuple[str, str, str]]]:
    """``(sentry DSC, [(key, decoded value, raw entry)])`` of a ``baggage`` header; bad entries are skipped."""
    sentry_raw: list[str] = []
    sentry_values: dict[str, str] = {}
    others: list[tuple[str, str, str]] = []
    if len(header) > MAX_HEADER_LENGTH:
        return None, []
    for entry in header.split(",")[:MAX_ENTRIES]:
        entry = entry.strip()
        key, sep, rest = entry.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = rest.split(";", 1)[0].strip()
        if key.startswith(SENTRY_PREFIX):
            sentry_raw.append(entry)
            sentry_values[unquote(key[len(SENTRY_PREFIX) :])] = unquote(value)
        else:
            others.append((unquote(key), unquote(value), entry))
    dsc = FrozenDsc(tuple(sentry_raw), sentry_values) if sentry_raw else None
    return dsc, others


def serialize_dsc(values: dict[str, str]) -> str:
    """``sentry-*`` baggage entries the way sentry-sdk writes them."""
    return ",".join(f"{SENTRY_PREFIX}{quote(key)}={quote(value)}" for key, value in values.items())


def sample_rand_of(trace_id: int, sampled: bool | None, rate: float) -> float:
    """A ``sample_rand`` in [0, 1), 6 digits, from the trace id's low 64 bits (what the ratio sampler reads).

    For a trace sampled by our ratio, ``rand < rate`` holds exactly when the ratio sampler said
    yes. When a caller's decision disagrees with it, the value is moved into the interval that
    decision implies (as sentry-sdk does), so Sentry's dynamic sampling reads the same decision.
    """
    fraction = (trace_id & (_TRACE_ID_LIMIT - 1)) / _TRACE_ID_LIMIT
    lower, upper = 0.0, 1.0
    if sampled is True and not fraction < rate:
        lower, upper = 0.0, rate
    elif sampled is False and fraction < rate:
        lower, upper = rate, 1.0
    else:
        return math.floor(fraction * 1_000_000) / 1_000_000
    scaled = lower + fraction * (upper - lower)
    return min(max(math.floor(scaled * 1_000_000) / 1_000_000, lower), math.nextafter(upper, 0.0))


def transaction_name(state: RequestState | None) -> str | None:
    """The request's Sentry transaction name, ``METHOD /route/template``; None before routing or unmatched."""
    if state is None or state.scope is None:
        return None
    route = getattr(state.scope.get("route"), "path", None)
    if not isinstance(route, str) and state.root_span is not None and state.root_span.attributes:
        attr = state.root_span.attributes.get("http.route")
        route = attr if isinstance(attr, str) else None
    method = state.scope.get("method")
    if not isinstance(route, str) or not isinstance(method, str):
        return None
    return f"{method} {route}"


class DscSource:
    """Builds the DSC of a trace: the caller's frozen one, or ours for a trace whose Sentry head is here."""

    def __init__(self, public_key: str | None, release: str, environment: str, sample_rate: float | None) -> None:
        self._public_key = public_key
        self._release = release
        self._environment = environment
        self._sample_rate = sample_rate

    def for_trace(
        self, trace_id: int, sampled: bool | None, transaction: str | None, incoming: FrozenDsc | None
    ) -> dict[str, str]:
        """The DSC values (Sentry's envelope ``trace`` header) for trace ``trace_id``."""
        if incoming is not None and incoming.trace_id == trace.format_trace_id(trace_id):
            return dict(incoming.values)
        values = {"trace_id": trace.format_trace_id(trace_id)}
        if self._public_key:
            values["public_key"] = self._public_key
        values["release"] = self._release
        values["environment"] = self._environment
        if transaction:
            values["transaction"] = transaction
        rate = self._sample_rate
        if rate is not None:
            values["sample_rate"] = str(float(rate))  # as sentry-sdk writes it
        if sampled is not None:
            values["sampled"] = "true" if sampled else "false"
        values["sample_rand"] = f"{sample_rand_of(trace_id, sampled, rate if rate is not None else 1.0):.6f}"
        return values

    def for_context(self, context: Context | None = None, state: RequestState | None = None) -> dict[str, str] | None:
        """The DSC of the trace active in ``context`` (None outside a trace)."""
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return None
        state = state if state is not None else current_state()
        return self.for_trace(
            span_context.trace_id,
            bool(span_context.trace_flags.sampled),
            transaction_name(state),
            incoming_dsc(context),
        )


class SentryBaggagePropagator(TextMapPropagator):
    """W3C ``baggage`` that keeps a caller's Sentry DSC frozen and writes ours when the trace starts here."""

    def __init__(self, dsc: DscSource | None) -> None:
        self._dsc = dsc  # None: no Sentry here, callers' DSCs still pass through

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        context = get_current() if context is None else context
        values = getter.get(carrier, BAGGAGE_HEADER)
        if not values:
            return context
        dsc, others = parse_baggage(",".join(values))
        if dsc is not None:
            context = set_value(_INCOMING_DSC, dsc, context)
        if others:
            raw: dict[str, tuple[str, str]] = {}
            for key, value, entry in others:
                context = otel_baggage.set_baggage(key, value, context)
                raw[key] = (value, entry)
            context = set_value(_RAW_THIRD_PARTY, raw, context)
        return context

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        entries: list[str] = []
        frozen = incoming_dsc(context)
        span_context = trace.get_current_span(context).get_span_context()
        if frozen is not None and (not span_context.is_valid or frozen.trace_id == _hex(span_context.trace_id)):
            entries.extend(frozen.raw)
        elif self._dsc is not None:
            ours = self._dsc.for_context(context)
            if ours:
                entries.append(serialize_dsc(ours))
        raw = get_value(_RAW_THIRD_PARTY, context)
        raw_entries = raw if isinstance(raw, dict) else {}
        for key, value in otel_baggage.get_all(context).items():
            if key.startswith(SENTRY_PREFIX):
                continue
            kept = raw_entries.get(key)
            if kept is not None and kept[0] == value:
                entries.append(kept[1])
            else:
                entries.append(f"{quote(str(key), safe='')}={quote(str(value), safe='')}")
        header = ",".join(entries)
        if header and len(header) <= MAX_HEADER_LENGTH:
            setter.set(carrier, BAGGAGE_HEADER, header)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE_HEADER}


def _hex(trace_id: int) -> str:
    return trace.format_trace_id(trace_id)
