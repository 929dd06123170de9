"""Model and provider labels stay true: names clients make up never take a real model's slot."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gatewayz._metrics.genai import GenAiMetrics
from otel_gatewayz._metrics.instruments import MAX_MODELS, Instruments
from otel_gatewayz._privacy.scrubber import Scrubber


def _models_seen(reader: InMemoryMetricReader) -> dict[str, int]:
    seen: dict[str, int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "gen_ai.client.operation.duration":
                    for point in metric.data.data_points:
                        model = str(point.attributes["gen_ai.request.model"])
                        seen[model] = seen.get(model, 0) + point.count
    return seen


def test_a_real_model_keeps_its_label_after_10000_made_up_ones():
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]).get_meter("t"))
    genai = GenAiMetrics(instruments, Scrubber((), ()))

    for i in range(10_000):  # a provider answers made-up names with an error (404 model_not_found)
        genai.record_call({"model": f"made-up-{i}", "provider": f"p{i}"}, 0.01, "404")
    genai.record_call({"model": "gpt-4o-mini", "provider": "openai"}, 0.2)
    genai.record_call({"model": "gpt-4o-mini", "provider": "openai"}, 0.3, "500")  # served before: keeps it

    seen = _models_seen(reader)
    assert seen == {"other": 10_000, "gpt-4o-mini": 2}
    assert instruments.providers("openai") == "openai"


def test_the_bound_still_holds_for_served_names():
    instruments = Instruments(MeterProvider().get_meter("t"))
    genai = GenAiMetrics(instruments, Scrubber((), ()))
    for i in range(MAX_MODELS + 50):
        genai.record_call({"model": f"m{i}", "provider": "openai"}, 0.01)
    assert instruments.models(f"m{MAX_MODELS - 1}") == f"m{MAX_MODELS - 1}"
    assert instruments.models(f"m{MAX_MODELS}") == "other"
    assert instruments.models("sk-live-0123456789abcdef0123456789") == "other"  # never a label
