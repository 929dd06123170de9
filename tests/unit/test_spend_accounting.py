"""An answer's tokens and cost: counters by provider, model, plan and operation; GenAI and request spans."""

from __future__ import annotations

import json
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gatewayz._metrics.genai import GenAiMetrics
from otel_gatewayz._metrics.instruments import Instruments
from otel_gatewayz._privacy.scrubber import Scrubber
from otel_gatewayz._spend.accounting import ProviderCall, Spend, SpendTotals, operation_of
from otel_gatewayz._spend.prices import Pricer
from otel_gatewayz._spend.usage import UsageReader


class Rig:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.instruments = Instruments(MeterProvider(metric_readers=[self.reader]).get_meter("otel_gatewayz"))
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        tracer = self.tracer_provider.get_tracer("otel_gatewayz")
        self.spend = Spend(self.instruments, Pricer(), GenAiMetrics(self.instruments, Scrubber((), ())).label, tracer)
        self.root = tracer.start_span("POST /v1/chat/completions")
        self.totals = SpendTotals()

    def call(self, model: str, provider: str = "openai", plan: str | None = "pro", **kw: Any) -> ProviderCall:
        return ProviderCall(
            provider=provider,
            model=model,
            plan=plan,
            operation="chat",
            started_ns=1,
            parent=self.root.get_span_context(),
            genai_span=kw.get("genai_span"),
            genai_totals=kw.get("genai_totals"),
            root_span=self.root,
            request_totals=self.totals,
        )

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        data = self.reader.get_metrics_data()
        found: dict[tuple[tuple[str, Any], ...], float] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            found[tuple(sorted(point.attributes.items()))] = point.value
        return found


def _answer(model: str, prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> Any:
    body = {
        "object": "chat.completion",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }
    reader = UsageReader(sse=False)
    reader.feed(json.dumps(body).encode())
    return reader.result()


def test_tokens_and_cost_by_provider_model_plan_and_operation():
    rig = Rig()
    rig.spend.record(rig.call("gpt-4o-mini"), _answer("gpt-4o-mini-2024-07-18", 1112, 69, cached=1024, reasoning=64))
    rig.spend.record(rig.call("gpt-4o-mini", plan="free"), _answer("gpt-4o-mini", 13, 5))

    labels = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.operation.name": "chat",
        "gatewayz.plan": "pro",
    }
    tokens = rig.points("gatewayz.gen_ai.tokens")
    for token_type, count in (("input", 1112), ("output", 69), ("cache_read", 1024), ("reasoning", 64)):
        assert tokens[tuple(sorted({**labels, "gen_ai.token.type": token_type}.items()))] == count
    assert tokens[tuple(sorted({**labels, "gatewayz.plan": "free", "gen_ai.token.type": "input"}.items()))] == 13
    expected = calc_price(
        Usage(input_tokens=1112, output_tokens=69, cache_read_tokens=1024, output_reasoning_tokens=64),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    cost = rig.points("gatewayz.gen_ai.cost.usd")
    assert cost[tuple(sorted(labels.items()))] == pytest.approx(float(expected))
    assert rig.points("gatewayz.gen_ai.unpriced_calls") == {}
    assert all("user" not in key for point in (*tokens, *cost) for key, _ in point)  # never by user


def test_an_unknown_model_is_counted_unpriced_with_its_tokens():
    rig = Rig()
    rig.spend.record(rig.call("made-up-model"), _answer("made-up-model", 20, 5))
    [(labels, count)] = rig.points("gatewayz.gen_ai.unpriced_calls").items()
    assert dict(labels)["gen_ai.request.model"] == "made-up-model" and count == 1
    assert rig.points("gatewayz.gen_ai.cost.usd") == {}
    assert sum(rig.points("gatewayz.gen_ai.tokens").values()) == 25
    [span] = rig.exporter.get_finished_spans()
    assert span.attributes["gatewayz.usage.cost.unpriced"] is True
    assert "gen_ai.usage.cost.amount" not in span.attributes


def test_our_genai_span_per_attempt_and_the_request_totals():
    rig = Rig()
    rig.spend.record(rig.call("gpt-4o-mini"), _answer("gpt-4o-mini", 1112, 69, cached=1024, reasoning=64))
    rig.spend.record(rig.call("gpt-4o-mini"), _answer("gpt-4o-mini", 13, 5))
    spans = rig.exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 2
    first = spans[0]
    assert first.parent is not None and first.parent.span_id == rig.root.get_span_context().span_id
    attrs = first.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "openai"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (1112, 69)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 64
    assert (attrs["gen_ai.usage.cost.currency"], attrs["gen_ai.usage.cost.source"]) == ("USD", "local")
    amounts = [s.attributes["gen_ai.usage.cost.amount"] for s in spans]
    assert attrs["gatewayz.usage.cost.input"] + attrs["gatewayz.usage.cost.output"] == pytest.approx(amounts[0])
    root = rig.root.attributes
    assert root["gatewayz.request.cost.amount"] == pytest.approx(sum(amounts))
    assert root["gatewayz.request.usage.input_tokens"] == 1125
    assert root["gatewayz.request.usage.output_tokens"] == 74


def test_the_official_genai_span_gets_its_attempts_totals_and_no_second_span():
    rig = Rig()
    official = rig.tracer_provider.get_tracer("opentelemetry.instrumentation.genai.openai").start_span("chat gpt-4o")
    totals = SpendTotals()
    rig.spend.record(rig.call("gpt-4o", genai_span=official, genai_totals=totals), _answer("gpt-4o", 100, 10))
    official.end()
    [span] = rig.exporter.get_finished_spans()
    assert span.name == "chat gpt-4o"
    assert span.attributes["gen_ai.usage.input_tokens"] == 100
    assert span.attributes["gen_ai.usage.cost.amount"] > 0


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/v1/chat/completions", "chat"), ("/v1/messages", "chat"), ("/v1/completions", "text_completion")],
)
def test_the_operation_comes_from_the_path(path: str, operation: str):
    assert operation_of(path) == operation


@pytest.mark.parametrize(("value", "reads"), [("true", True), ("false", False)])
def test_gatewayz_spend_turns_the_reading_on_and_off(value: str, reads: bool):
    from otel_gatewayz._config.settings import load_settings
    from otel_gatewayz._setup.runtime import Parts, make_runtime

    runtime = make_runtime(Parts.build(load_settings({"GATEWAYZ_SPEND": value})), configured=False)
    assert (runtime.client_hooks._spend is not None) == reads


def test_no_plan_is_none_and_a_secret_like_plan_is_other():
    rig = Rig()
    rig.spend.record(rig.call("gpt-4o-mini", plan=None), _answer("gpt-4o-mini", 13, 5))
    rig.spend.record(rig.call("gpt-4o-mini", plan="sk-live-0123456789abcdef0123456789"), _answer("gpt-4o-mini", 13, 5))
    plans = {dict(labels)["gatewayz.plan"] for labels in rig.points("gatewayz.gen_ai.cost.usd")}
    assert plans == {"none", "other"}


def test_an_unsampled_request_gets_its_counts_and_no_span():
    """At 1% sampling most requests are unsampled: counted all the same, and no span (nor a new trace) of ours."""
    from dataclasses import replace

    from opentelemetry.trace import SpanContext, TraceFlags

    rig = Rig()
    sampled = rig.root.get_span_context()
    unsampled = SpanContext(sampled.trace_id, sampled.span_id, is_remote=False, trace_flags=TraceFlags(0))
    for parent in (unsampled, None):
        rig.spend.record(replace(rig.call("gpt-4o-mini"), parent=parent), _answer("gpt-4o-mini", 13, 5))
    assert rig.exporter.get_finished_spans() == ()
    assert sum(rig.points("gatewayz.gen_ai.tokens").values()) == 2 * 18
