"""Cost is genai-prices' (or the user's negotiated price), never guessed; the prices file is one setting."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from otel_gatewayz._config.parsers import SettingError, parse_prices_file
from otel_gatewayz._config.settings import load_settings
from otel_gatewayz._spend.prices import PRICES_FILE_TABLE, Pricer, price_overrides


def _genai_prices(usage: Usage, model: str, provider: str) -> Decimal:
    return calc_price(usage, model, provider_id=provider).total_price


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o-mini"), ("openai", "o4-mini"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1")],
)
def test_every_price_is_genai_prices_own(provider: str, model: str):
    """Per-token rates are derived once from genai-prices, and always give its exact result (tiers included)."""
    pricer = Pricer()
    rng = random.Random(7)
    for _ in range(200):
        inputs = rng.choice([rng.randint(1, 3000), rng.randint(190_000, 400_000)])
        usage = Usage(
            input_tokens=inputs,
            output_tokens=rng.randint(1, 4000),
            cache_read_tokens=rng.randint(0, inputs),
            output_reasoning_tokens=rng.randint(0, 64),
        )
        price = pricer.price(provider, [model], usage)
        assert price is not None
        assert price.total == float(_genai_prices(usage, model, provider)), (usage, model)
        assert price.table.startswith("genai-prices ")
        assert price.input + price.output == pytest.approx(price.total)


def test_the_answered_model_is_priced_first_then_the_asked_one():
    usage = Usage(input_tokens=1000, output_tokens=100)
    pricer = Pricer()
    price = pricer.price("openai", ["gpt-4o-mini-2024-07-18", "gpt-4o"], usage)
    assert price is not None and price.total == float(_genai_prices(usage, "gpt-4o-mini", "openai"))
    fallback = pricer.price("openai", [None, "gpt-4o"], usage)
    assert fallback is not None and fallback.total == float(_genai_prices(usage, "gpt-4o", "openai"))


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "made-up-model"),  # unknown model
        ("my-private-proxy", "gpt-4o-mini"),  # unknown provider: not priced at openai's rates
        ("openrouter", "gpt-4o-mini"),  # openrouter names it openai/gpt-4o-mini: no guess from the bare name
        (None, "gpt-4o-mini"),  # no provider at all
    ],
)
def test_unknown_models_and_providers_are_unpriced_never_guessed(provider: str | None, model: str):
    assert Pricer().price(provider, [model], Usage(input_tokens=10, output_tokens=5)) is None


def test_a_flood_of_made_up_names_keeps_the_lookup_memory_bounded():
    pricer = Pricer()
    for i in range(5000):
        assert pricer.price("unknown-provider", [f"made-up-{i}"], Usage(input_tokens=1, output_tokens=1)) is None
    assert len(pricer._models) <= 4096


def _prices_file(tmp_path: Path, table: object) -> str:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    return str(path)


def test_negotiated_prices_win_for_their_provider_and_model(tmp_path: Path):
    path = _prices_file(
        tmp_path,
        {
            "openai": {"gpt-4o-mini": {"input_mtok": 0.1, "output_mtok": 0.4, "cache_read_mtok": 0.05}},
            "*": {"my-finetune": {"input_mtok": 2, "output_mtok": 8}},
        },
    )
    pricer = Pricer(price_overrides(parse_prices_file(path)))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=500_000)
    # By the asked name and by genai-prices' id of a dated name the answer carries.
    for model in ("gpt-4o-mini", "GPT-4o-mini-2024-07-18"):
        price = pricer.price("openai", [model], usage)
        assert price is not None and price.table == PRICES_FILE_TABLE
        assert price.total == pytest.approx(0.5 * 0.1 + 0.5 * 0.05 + 0.4)
    other = pricer.price("openai", ["gpt-4o"], usage)  # not in the file: genai-prices
    assert other is not None and other.total == float(_genai_prices(usage, "gpt-4o", "openai"))
    custom = pricer.price("any-provider", ["my-finetune"], Usage(input_tokens=1000, output_tokens=1000))
    assert custom is not None and custom.total == pytest.approx(0.002 + 0.008)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"openai": {"gpt-4o": {"input_per_token": 1}}}', "not a genai-prices price key"),
        ('{"openai": {"gpt-4o": {"input_mtok": -1}}}', "must be a number >= 0"),
        ('{"openai": ["gpt-4o"]}', "must map model names to prices"),
    ],
)
def test_a_bad_prices_file_names_the_variable_and_prices_go_on(tmp_path: Path, content: str, says: str):
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(SettingError, match=says):
        parse_prices_file(str(path))
    settings = load_settings({"GATEWAYZ_PRICES_FILE": str(path)})
    [problem] = settings.problems
    assert problem.variable == "GATEWAYZ_PRICES_FILE" and settings.prices_file == ()
    assert "genai-prices' table alone" in str(problem)


def test_a_missing_prices_file_is_a_problem_too(tmp_path: Path):
    settings = load_settings({"GATEWAYZ_PRICES_FILE": str(tmp_path / "nope.json")})
    assert [p.variable for p in settings.problems] == ["GATEWAYZ_PRICES_FILE"]
