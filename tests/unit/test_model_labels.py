"""Model and provider labels stay true: names clients make up never take a real model's slot."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gatewayz._metrics.genai import GenAiMetrics
from otel_gatewayz._metrics.instruments import MAX_MODELS, BoundedValues, Instruments
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


def test_the_official_genai_instrumentations_labels_are_bounded_too():
    """``gen_ai.client.*`` recorded by opentelemetry-instrumentation-genai-* go through the same limits."""
    from otel_gatewayz._metrics.genai_labels import GenAiLabels
    from otel_gatewayz._metrics.measurements import install_measurement_hook

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instruments = Instruments(provider.get_meter("otel_gatewayz"))
    genai = GenAiMetrics(instruments, Scrubber((), ()))
    install_measurement_hook(provider, GenAiLabels(instruments, genai.label))
    meter = provider.get_meter("opentelemetry.instrumentation.genai.openai")  # as the instrumentation makes it
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "server.address": "api.openai.com"}

    for i in range(10_000):  # the provider rejects made-up names: an error, no response model
        duration.record(0.01, {**base, "gen_ai.request.model": f"made-up-{i}", "error.type": "NotFoundError"})
    served = {**base, "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"}
    duration.record(0.2, served)
    tokens.record(12, {**served, "gen_ai.token.type": "input"})
    tokens.record(
        3, {**base, "gen_ai.request.model": "sk-live-0123456789abcdef0123456789", "gen_ai.response.model": "x"}
    )

    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: [dict(point.attributes) for point in metric.data.data_points]
        for scope in data.resource_metrics[0].scope_metrics
        for metric in scope.metrics
    }
    models = {
        (p["gen_ai.request.model"], p.get("gen_ai.response.model")) for p in points["gen_ai.client.operation.duration"]
    }
    assert models == {("other", None), ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")}
    assert len(points["gen_ai.client.operation.duration"]) == 2  # 10,001 calls, 2 series
    token_models = {
        (p["gen_ai.request.model"], p["gen_ai.response.model"]) for p in points["gen_ai.client.token.usage"]
    }
    assert token_models == {("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("other", "x")}  # a secret is never a label
    # "openai" had served nothing while the made-up names failed: those calls count under "other".
    by_model = {
        (p["gen_ai.request.model"], p["gen_ai.provider.name"]) for p in points["gen_ai.client.operation.duration"]
    }
    assert by_model == {("other", "other"), ("gpt-4o-mini", "openai")}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_rare_served_names_cannot_push_a_busy_model_into_other():
    """The flood that won before: a busy model, then 1,000 made-up names the provider serves once each."""
    models = BoundedValues(MAX_MODELS)
    for _ in range(50):
        models.admit("gpt-4o-mini")
    for i in range(1000):
        models.admit(f"made-up-{i}")
    assert models("gpt-4o-mini") == "gpt-4o-mini"
    assert len(models.labelled) == MAX_MODELS


def test_a_model_launched_after_150_made_up_names_gets_its_label_once_busy():
    models = BoundedValues(MAX_MODELS)
    for i in range(150):  # the provider answers any name: the first 100 take every slot
        models.admit(f"made-up-{i}")
    models.admit("gpt-5-mini")
    assert models("gpt-5-mini") == "other"  # first seen: no slot yet, counted under other
    for _ in range(20):
        models.admit("gpt-5-mini")
    assert models("gpt-5-mini") == "gpt-5-mini"
    assert len(models.labelled) == MAX_MODELS  # it took a made-up name's slot


def test_labels_follow_recent_traffic_and_ever_labelled_names_stay_bounded():
    clock = _Clock()
    models = BoundedValues(2, half_life=60.0, lifetime=4, clock=clock)
    for name in ("old-a", "old-b"):
        for _ in range(100):
            models.admit(name)
    for _ in range(20):  # busy, but much less than the old ones' recent use: no slot yet
        models.admit("new-a")
    assert models("new-a") == "other"
    clock.now = 600.0  # ten half-lives later the old ones' use has faded
    for _ in range(20):
        models.admit("new-a")
    assert models("new-a") == "new-a" and len(models.labelled) == 2  # one old name gave its slot up
    clock.now = 1200.0
    for name in ("new-b", "new-c", "new-d"):
        for _ in range(50):
            models.admit(name)
    # 4 names may ever be labelled (the series bound): old-a, old-b, new-a, new-b; new-c and new-d stay "other".
    assert models("new-b") == "new-b"
    assert models("new-c") == models("new-d") == "other"


def test_no_count_is_lost_while_labels_move():
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]).get_meter("t"))
    genai = GenAiMetrics(instruments, Scrubber((), ()))
    calls = 0
    for i in range(150):
        genai.record_call({"model": f"made-up-{i}", "provider": "openai"}, 0.01)
        calls += 1
    for _ in range(30):
        genai.record_call({"model": "gpt-5-mini", "provider": "openai"}, 0.01)
        calls += 1
    seen = _models_seen(reader)
    assert sum(seen.values()) == calls
    assert seen["gpt-5-mini"] > 20 and seen["other"] >= 50
    assert len(seen) <= MAX_MODELS + 2  # the labelled ones, a retired one, and other
