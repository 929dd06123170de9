"""Each provider answer's tokens and cost: counted in metrics, put on its GenAI span and its request's span.

Per attempt: every answer that reported usage is counted once, when its body ends, so an SDK
call's retries (failed attempts report none) never count twice. Its GenAI span is the official
instrumentation's (one per SDK call, totals of its attempts) when there is one, else a
``{operation} {model}`` span of ours covering the attempt. Per request: the totals go on the
request's server span, the one that carries the user (per-user cost lives on spans, never in a
metric label). Names follow the GenAI conventions' cost draft (semantic-conventions-genai #443):
``gen_ai.usage.cost.amount`` / ``.currency`` / ``.source``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from .._metrics.instruments import Instruments
from .._safety.log import log_once
from .prices import Price, Pricer
from .usage import CallUsage

__all__ = ["ProviderCall", "Spend", "SpendTotals", "operation_of"]

# genai-prices usage key -> (gen_ai.token.type label, span attribute)
TOKEN_KINDS = (
    ("input_tokens", "input", "gen_ai.usage.input_tokens"),
    ("output_tokens", "output", "gen_ai.usage.output_tokens"),
    ("cache_read_tokens", "cache_read", "gen_ai.usage.cache_read.input_tokens"),
    ("cache_write_tokens", "cache_write", "gen_ai.usage.cache_creation.input_tokens"),
    ("output_reasoning_tokens", "reasoning", "gen_ai.usage.reasoning.output_tokens"),
)
NO_PLAN = "none"


def operation_of(path: str) -> str:
    """The GenAI operation a provider URL path names (chat unless it says otherwise)."""
    path = path.rstrip("/")
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "text_completion"
    return "chat"


@dataclass
class SpendTotals:
    """Tokens and cost added up over answers (a GenAI span's attempts, or a whole request)."""

    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    cost_in: float = 0.0
    cost_out: float = 0.0
    priced: int = 0
    unpriced: int = 0

    def add(self, tokens: Mapping[str, int], price: Price | None) -> None:
        for key, count in tokens.items():
            self.tokens[key] = self.tokens.get(key, 0) + count
        if price is None:
            self.unpriced += 1
        else:
            self.priced += 1
            self.cost += price.total
            self.cost_in += price.input
            self.cost_out += price.output


@dataclass
class ProviderCall:
    """What is known of a provider call when it starts: who for, where, and which spans it belongs to."""

    provider: str | None
    model: str | None
    plan: str | None
    operation: str
    started_ns: int
    parent: SpanContext | None  # the HTTP client span's parent (ours' parent); None: no span of ours
    genai_span: Span | None  # the official instrumentation's span around the call, if any
    genai_totals: SpendTotals | None
    root_span: Span | None
    request_totals: SpendTotals


class Spend:
    """Records answers' usage: ``label`` makes a name fit for a label (empty if it looks like a secret)."""

    def __init__(
        self, instruments: Instruments, pricer: Pricer, label: Callable[[Any], str], tracer: trace.Tracer
    ) -> None:
        self._instruments = instruments
        self._pricer = pricer
        self._label = label
        self._tracer = tracer

    def record(self, call: ProviderCall, answered: CallUsage) -> None:
        """Count one answer's usage and cost, and put them on its spans."""
        tokens = {key: answered.tokens(key) for key, _, _ in TOKEN_KINDS}
        try:
            price = self._pricer.price(call.provider, (answered.model, call.model), answered.usage)
        except (ValueError, ArithmeticError):  # genai-prices refused the usage: unpriced, not guessed
            log_once("spend-price", logging.WARNING, "otel_gatewayz: a usage could not be priced", exc_info=True)
            price = None
        self._count(call, tokens, price)
        self._on_spans(call, answered, tokens, price)

    def _count(self, call: ProviderCall, tokens: Mapping[str, int], price: Price | None) -> None:
        instruments = self._instruments
        provider, model, plan = self._label(call.provider), self._label(call.model), self._label(call.plan)
        instruments.providers.admit(provider)  # an answer with usage: the provider served this model
        instruments.models.admit(model)
        instruments.plans.admit(plan)
        labels = {
            "gen_ai.provider.name": instruments.providers(provider),
            "gen_ai.request.model": instruments.models(model),
            "gen_ai.operation.name": call.operation,
            "gatewayz.plan": instruments.plans(plan) if call.plan else NO_PLAN,  # a secret-like plan: other
        }
        for key, token_type, _ in TOKEN_KINDS:
            count = tokens[key]
            if count > 0 or token_type in ("input", "output"):
                instruments.tokens.add(count, {**labels, "gen_ai.token.type": token_type})
        if price is None:
            instruments.unpriced.add(1, labels)
        else:
            instruments.cost.add(price.total, labels)

    def _on_spans(
        self, call: ProviderCall, answered: CallUsage, tokens: Mapping[str, int], price: Price | None
    ) -> None:
        call.request_totals.add(tokens, price)
        root = call.root_span
        if root is not None and root.is_recording():
            root.set_attributes(_request_attributes(call.request_totals))
        genai = call.genai_span
        if genai is not None and genai.is_recording() and call.genai_totals is not None:
            call.genai_totals.add(tokens, price)
            genai.set_attributes(_call_attributes(call.genai_totals, answered.model))
            return
        if call.parent is None or not call.parent.trace_flags.sampled:
            return  # no trace to join (a span of its own would start a new one), or an unsampled one
        attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": call.operation}
        if call.provider:
            attributes["gen_ai.provider.name"] = call.provider
        if call.model:
            attributes["gen_ai.request.model"] = call.model
        own = SpendTotals()
        own.add(tokens, price)
        attributes.update(_call_attributes(own, answered.model))
        span = self._tracer.start_span(
            f"{call.operation} {call.model or answered.model or ''}".strip(),
            context=trace.set_span_in_context(NonRecordingSpan(call.parent)),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=call.started_ns,
        )
        span.end(time.time_ns())


def _call_attributes(totals: SpendTotals, response_model: str | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    for key, token_type, name in TOKEN_KINDS:
        count = totals.tokens.get(key, 0)
        if count > 0 or token_type in ("input", "output"):
            attributes[name] = count
    if totals.priced:
        attributes["gen_ai.usage.cost.amount"] = totals.cost
        attributes["gen_ai.usage.cost.currency"] = "USD"
        attributes["gen_ai.usage.cost.source"] = "local"
        attributes["gatewayz.usage.cost.input"] = totals.cost_in
        attributes["gatewayz.usage.cost.output"] = totals.cost_out
    if totals.unpriced:
        attributes["gatewayz.usage.cost.unpriced"] = True
    return attributes


def _request_attributes(totals: SpendTotals) -> dict[str, AttributeValue]:
    return {
        "gatewayz.request.usage.input_tokens": totals.tokens.get("input_tokens", 0),
        "gatewayz.request.usage.output_tokens": totals.tokens.get("output_tokens", 0),
        "gatewayz.request.cost.amount": totals.cost,
        "gatewayz.request.cost.unpriced_calls": totals.unpriced,
    }
