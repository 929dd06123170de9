"""Spend end to end (issue 24): every provider call's tokens and dollar cost on /metrics and on its span.

The gateway runs as users run it (``opentelemetry-instrument uvicorn``) from each real SDK stack
(openai 3.x / anthropic 2.x on httpx2; openai 1.44 on httpx 0.27) WITHOUT the official GenAI
instrumentations (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), and calls the stub provider, whose
usage is known (tests below: "hi" is 13 prompt tokens, the reply 5), through the SDK routes and
the plain-httpx relays, streamed and not. The cost expected is genai-prices' own for that usage.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from tests.e2e.helpers import CHAT_PATH, RAW_CHAT_PATH, SHA, auth, build_stack, eventually

pytestmark = pytest.mark.e2e
RAW_MESSAGES_PATH = "/v1/raw/messages"
PROVIDER_ENV = {"PROVIDER_CREATED": "1700000000", "PROVIDER_CHUNK_DELAY": "0.005"}
WITHOUT_GENAI_INSTRUMENTATIONS = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,anthropic"}
PROMPT_TOKENS, REPLY_TOKENS = 13, 5  # 8 + 4 per message + 1 word; "Hello from the stub provider."
GPT, CLAUDE = "gpt-4o-mini", "claude-sonnet-4-5"


def _price(model: str, provider: str, calls: int = 1, **usage: int) -> float:
    tokens = {"input_tokens": PROMPT_TOKENS, "output_tokens": REPLY_TOKENS, **usage}
    return calls * float(calc_price(Usage(**tokens), model, provider_id=provider).total_price)


def _call(base_url: str, path: str, model: str, provider: str, user: str = "alice", **body: Any) -> httpx.Response:
    payload = {"model": model, "provider": provider, "messages": [{"role": "user", "content": "hi"}], **body}
    if path.endswith("messages"):
        payload["max_tokens"] = 64
    response = httpx.post(f"{base_url}{path}", json=payload, headers=auth(user), timeout=60)
    assert response.status_code == 200, (path, body, response.text)
    return response


def _series(metrics: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scrape_until(gateway: Any, ready: Callable[[str], bool], what: str) -> str:
    def probe() -> str | None:
        text = httpx.get(gateway.metrics_url).text
        return text if ready(text) else None

    return eventually(probe, timeout=30, what=what)


def _traced(otlp_recorder: Any, **env: str) -> dict[str, str]:
    """Every request traced, its spans to the OTLP recorder within 0.1 s."""
    return {
        "APP_ENV": "staging",
        "RELEASE_SHA": SHA,
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_recorder.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **env,
    }


@pytest.fixture(scope="module", params=["current", "pinned"])
def stack(request: pytest.FixtureRequest) -> Path:
    return build_stack(request.param)


def test_tokens_and_cost_of_sdk_and_relay_calls_on_metrics_and_spans(stack, gateway_factory, otlp_recorder):
    env = _traced(otlp_recorder, **WITHOUT_GENAI_INSTRUMENTATIONS)
    gateway = gateway_factory(env=env, bin_dir=stack, provider_env=PROVIDER_ENV)
    has_anthropic = (stack / "python").exists() and "current" in str(stack)
    gpt_calls = [(CHAT_PATH, False), (CHAT_PATH, True), (RAW_CHAT_PATH, False), (RAW_CHAT_PATH, True)]
    claude_calls = [(RAW_MESSAGES_PATH, False), (RAW_MESSAGES_PATH, True)]
    if has_anthropic:
        claude_calls += [("/v1/messages", False), ("/v1/messages", True)]
    for path, stream in gpt_calls:
        _call(gateway.base_url, path, GPT, "openai", stream=stream)
    for path, stream in claude_calls:
        _call(gateway.base_url, path, CLAUDE, "anthropic", stream=stream)
    _call(gateway.base_url, RAW_CHAT_PATH, GPT, "openai", user="free_bob")  # the free plan
    _call(gateway.base_url, RAW_CHAT_PATH, "acme-unreleased-1", "openai")  # unknown to genai-prices
    # The SDK retries: the first attempt fails (500, no usage), the second answers. One count.
    _call(gateway.base_url, CHAT_PATH, "flaky-model", "openai")
    flaky_attempts = [
        r for r in httpx.get(f"{gateway.provider_url}/_received").json() if r["path"].endswith("/chat/completions")
    ]
    assert len(flaky_attempts) == len(gpt_calls) + 2 + 2  # the flaky call took two attempts

    tokens = "gatewayz_gen_ai_tokens_total"
    expected_calls = len(gpt_calls) + len(claude_calls) + 3
    metrics = _scrape_until(
        gateway,
        lambda text: _series(text, tokens, gen_ai_token_type="output") == REPLY_TOKENS * expected_calls,
        "the tokens of every call",
    )
    gpt = {"gen_ai_provider_name": "openai", "gen_ai_request_model": GPT, "gen_ai_operation_name": "chat"}
    pro, free = {**gpt, "gatewayz_plan": "pro"}, {**gpt, "gatewayz_plan": "free"}
    assert _series(metrics, tokens, **pro, gen_ai_token_type="input") == PROMPT_TOKENS * len(gpt_calls)
    assert _series(metrics, tokens, **pro, gen_ai_token_type="output") == REPLY_TOKENS * len(gpt_calls)
    assert _series(metrics, tokens, **free, gen_ai_token_type="input") == PROMPT_TOKENS
    claude = {"gen_ai_provider_name": "anthropic", "gen_ai_request_model": CLAUDE, "gatewayz_plan": "pro"}
    assert _series(metrics, tokens, **claude, gen_ai_token_type="input") == PROMPT_TOKENS * len(claude_calls)
    assert _series(metrics, tokens, **claude, gen_ai_token_type="output") == REPLY_TOKENS * len(claude_calls)

    cost = "gatewayz_gen_ai_cost_usd_total"
    assert _series(metrics, cost, **pro) == pytest.approx(_price(GPT, "openai", len(gpt_calls)))
    assert _series(metrics, cost, **free) == pytest.approx(_price(GPT, "openai"))
    assert _series(metrics, cost, **claude) == pytest.approx(_price(CLAUDE, "anthropic", len(claude_calls)))
    unknown = {"gen_ai_request_model": "acme-unreleased-1", "gen_ai_provider_name": "openai"}
    assert _series(metrics, "gatewayz_gen_ai_unpriced_calls_total", **unknown) == 1
    assert _series(metrics, cost, **unknown) == 0  # never guessed
    assert _series(metrics, tokens, **unknown, gen_ai_token_type="input") == PROMPT_TOKENS  # still counted
    flaky = {"gen_ai_request_model": "flaky-model"}
    assert _series(metrics, tokens, **flaky, gen_ai_token_type="input") == PROMPT_TOKENS  # once, not per attempt
    assert _series(metrics, "gatewayz_gen_ai_unpriced_calls_total", **flaky) == 1
    assert "alice" not in metrics and "user_id" not in metrics  # never by user
    # Anthropic SDK calls are measured too (anthropic 2.x's own span records no metrics).
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert _series(metrics, duration, gen_ai_provider_name="anthropic") == len(claude_calls)
    assert _series(metrics, duration, gen_ai_provider_name="openai") == len(gpt_calls) + 2 + 2  # flaky: 2 attempts

    # One GenAI span of ours per call (no official instrumentation here), with tokens and cost.
    def genai_spans(recorder: Any) -> list[dict[str, Any]] | None:
        found = [s for s in recorder.spans() if "gen_ai.usage.input_tokens" in s["attributes"]]
        return found if len(found) >= expected_calls else None

    spans = otlp_recorder.wait_for(genai_spans, timeout=30)
    assert len(spans) == expected_calls, [s["name"] for s in spans]
    for span in spans:
        attrs = span["attributes"]
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (13, 5), attrs
        model = attrs["gen_ai.request.model"]
        # Ours, or the GenAI span anthropic 2.x makes itself (our cost goes on it, no second span).
        assert span["scope"] in ("otel_gatewayz", "com.anthropic.sdk.python"), span["scope"]
        ours = span["scope"] == "otel_gatewayz"
        assert span["kind"] == "CLIENT" and span["name"] == (f"chat {model}" if ours else "anthropic.messages.create")
        if model in ("acme-unreleased-1", "flaky-model"):
            assert attrs["gatewayz.usage.cost.unpriced"] is True and "gen_ai.usage.cost.amount" not in attrs
            continue
        provider = "anthropic" if model == CLAUDE else "openai"
        assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(_price(model, provider))
        assert (attrs["gen_ai.usage.cost.currency"], attrs["gen_ai.usage.cost.source"]) == ("USD", "local")
    # Per request (and so per user) on the server span.
    servers = {s["span_id"]: s for s in otlp_recorder.spans() if s["kind"] == "SERVER"}
    for span in spans:
        trace_servers = [s for s in servers.values() if s["trace_id"] == span["trace_id"]]
        [server] = trace_servers
        assert server["attributes"]["gatewayz.request.usage.input_tokens"] == 13
        assert server["attributes"]["gatewayz.request.cost.amount"] == pytest.approx(
            span["attributes"].get("gen_ai.usage.cost.amount", 0.0)
        )
        assert server["attributes"]["user.id"] in ("alice", "free_bob")


def test_with_the_genai_instrumentations_the_official_span_carries_the_cost(gateway_factory, otlp_recorder):
    """One span per SDK call whatever its retries: the official one, with our cost on it; no span of ours."""
    env = _traced(otlp_recorder, GATEWAY_PROVIDER_RETRIES="2")
    gateway = gateway_factory(env=env, bin_dir=build_stack("current"), provider_env=PROVIDER_ENV)
    for path, model, provider in ((CHAT_PATH, GPT, "openai"), ("/v1/messages", CLAUDE, "anthropic")):
        for stream in (False, True):
            _call(gateway.base_url, path, model, provider, stream=stream)

    def costed(recorder: Any) -> list[dict[str, Any]] | None:
        found = [s for s in recorder.spans() if "gen_ai.usage.cost.amount" in s["attributes"]]
        return found if len(found) >= 4 else None

    spans = otlp_recorder.wait_for(costed, timeout=30)
    # The innermost GenAI span around each call: the openai instrumentation's, and anthropic 2.x's own
    # (inside the anthropic instrumentation's); none of ours, and one per call.
    assert sorted((s["scope"], s["name"]) for s in spans) == [
        ("com.anthropic.sdk.python", "anthropic.messages.create"),
        ("com.anthropic.sdk.python", "anthropic.messages.create"),
        ("opentelemetry.instrumentation.genai.openai", f"chat {GPT}"),
        ("opentelemetry.instrumentation.genai.openai", f"chat {GPT}"),
    ]
    for span in spans:
        model = span["attributes"]["gen_ai.request.model"]
        provider = "anthropic" if model == CLAUDE else "openai"
        assert span["attributes"]["gen_ai.usage.cost.amount"] == pytest.approx(_price(model, provider))
    metrics = _scrape_until(
        gateway,
        lambda text: _series(text, "gatewayz_gen_ai_tokens_total", gen_ai_token_type="output") == 4 * REPLY_TOKENS,
        "tokens of 4 SDK calls",
    )
    assert _series(metrics, "gatewayz_gen_ai_cost_usd_total") == pytest.approx(
        2 * _price(GPT, "openai") + 2 * _price(CLAUDE, "anthropic")
    )


def test_a_model_first_seen_after_150_served_made_up_names_gets_its_label_once_busy(gateway_factory, otlp_recorder):
    """Also: unsampled requests (rate 0 here) are counted all the same, and make no span (nor trace) of ours."""
    env = _traced(otlp_recorder, SENTRY_TRACES_SAMPLE_RATE="0", OTEL_METRIC_EXPORT_INTERVAL="500")
    gateway = gateway_factory(env=env, provider_env=PROVIDER_ENV)
    with ThreadPoolExecutor(8) as pool:  # the stub serves any name: the 100 slots fill with made-up ones
        list(pool.map(lambda i: _call(gateway.base_url, RAW_CHAT_PATH, f"made-up-{i}", "openai"), range(150)))
    for _ in range(20):
        _call(gateway.base_url, RAW_CHAT_PATH, "gpt-4.1-nano", "openai")

    tokens = "gatewayz_gen_ai_tokens_total"
    metrics = _scrape_until(
        gateway,
        lambda text: _series(text, tokens, gen_ai_token_type="input") == PROMPT_TOKENS * 170,
        "the tokens of 170 calls",
    )
    labelled = _series(metrics, tokens, gen_ai_request_model="gpt-4.1-nano", gen_ai_token_type="input")
    assert labelled >= PROMPT_TOKENS * 15, labelled  # labelled once busy: its first few uses count as other
    models = set(re.findall(r'gatewayz_gen_ai_tokens_total\{[^}]*gen_ai_request_model="([^"]*)"', metrics))
    assert "other" in models and len(models) <= 100 + 2, len(models)  # bounded: 100 labels, a retired one, other
    cost = _series(metrics, "gatewayz_gen_ai_cost_usd_total", gen_ai_request_model="gpt-4.1-nano")
    assert cost == pytest.approx(_price("gpt-4.1-nano", "openai", int(labelled // PROMPT_TOKENS)))
    otlp_recorder.wait_for(lambda r: r.metrics() or None, timeout=30)  # the exporters ran
    time.sleep(0.5)
    assert otlp_recorder.spans() == []


def test_relayed_answers_pass_byte_for_byte_while_their_usage_is_read(gateway_factory):
    env = {"APP_ENV": "staging", "RELEASE_SHA": SHA}
    plain = gateway_factory(env=env, instrumented=False, provider_env=PROVIDER_ENV)
    instrumented = gateway_factory(env=env, provider_env=PROVIDER_ENV)
    bodies = []
    for gateway in (plain, instrumented):
        answers = []
        for path, model, provider in ((RAW_CHAT_PATH, GPT, "openai"), (RAW_MESSAGES_PATH, CLAUDE, "anthropic")):
            for stream in (False, True):
                answers.append(_call(gateway.base_url, path, model, provider, stream=stream).content)
        bodies.append(answers)
    assert bodies[0] == bodies[1]
    assert b'"usage"' in bodies[1][1] and b"event: message_delta" in bodies[1][3]
    metrics = _scrape_until(
        instrumented,
        lambda text: _series(text, "gatewayz_gen_ai_tokens_total", gen_ai_token_type="output") == 4 * REPLY_TOKENS,
        "the tokens of 4 relayed answers",
    )
    assert _series(metrics, "gatewayz_telemetry_dropped_total", signal="spend") == 0
