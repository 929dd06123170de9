"""A call's dollar cost: genai-prices' table (upgrading the package updates it), or the user's negotiated rates.

``GATEWAYZ_PRICES_FILE`` entries win over genai-prices for their provider and model (the name the
app or the answer used, or genai-prices' model id for it). An unknown provider or model is
unpriced: never guessed from another provider's table or a similar name.

genai-prices' calculation is general (units, tiers, validation) and costs ~0.1 ms a call. Below
its first tier a price is linear in the reported token counts, so each model's per-token rates
are derived once from genai-prices' own calculation, checked against it on the first real usage,
and then applied; a call past a tier threshold is priced by genai-prices itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from importlib.metadata import version
from typing import Any

from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot, get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from .usage import reported

__all__ = ["PRICES_FILE_TABLE", "Price", "Pricer", "price_overrides"]

PRICES_FILE_TABLE = "GATEWAYZ_PRICES_FILE"
MAX_CACHED = 4096  # (provider, model) look-ups remembered; past it the cache starts over
Rates = dict[str, tuple[Decimal, Decimal]]  # usage key -> (input price, output price) per token
Overrides = Mapping[tuple[str, str], ModelPrice]


@dataclass(frozen=True)
class Price:
    """A call's cost in USD, split as genai-prices splits it, and which table priced it."""

    total: float
    input: float
    output: float
    table: str


def price_overrides(
    entries: Iterable[tuple[str, str, Iterable[tuple[str, Decimal]]]],
) -> dict[tuple[str, str], ModelPrice]:
    """``(provider or "*", model) -> ModelPrice`` from the parsed prices file (names lower-cased)."""
    return {(provider.lower(), model.lower()): ModelPrice(**dict(prices)) for provider, model, prices in entries}


def _tier_floor(model_price: ModelPrice) -> int | None:
    """The lowest input-token count at which a tier starts (None: no tiers)."""
    starts = [
        tier.start for value in vars(model_price).values() if isinstance(value, TieredPrices) for tier in value.tiers
    ]
    return min(starts) if starts else None


def _calc(model_price: ModelPrice, usage: Usage) -> tuple[Decimal, Decimal]:
    result = model_price.calc_price(usage)
    return result["input_price"], result["output_price"]


def _derive_rates(model_price: ModelPrice, keys: Sequence[str]) -> Rates | None:
    """Per-token rates of ``keys`` from genai-prices' own calculation at one-token points.

    A key that can't be reported alone (cache reads need input tokens) is measured with the one
    other key that makes the point valid, and that key's rate taken off. None if no point works.
    """
    rates: Rates = {}
    pending = list(keys)
    for _ in range(len(keys) + 1):
        for key in list(pending):
            for partner in (None, *rates):
                point = {key: 1} if partner is None else {key: 1, partner: 1}
                try:
                    paid = _calc(model_price, Usage(**point))
                except ValueError:
                    continue
                if partner is not None:
                    paid = (paid[0] - rates[partner][0], paid[1] - rates[partner][1])
                rates[key] = paid
                pending.remove(key)
                break
        if not pending:
            return rates
    return None


class Pricer:
    """Prices a call's usage; ``overrides`` are the prices file's entries (see :func:`price_overrides`)."""

    def __init__(self, overrides: Overrides | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._table = f"genai-prices {version('genai-prices')}"
        self._snapshot: DataSnapshot | None = None
        self._models: dict[tuple[str, str], tuple[Provider, ModelInfo] | None] = {}
        self._rates: dict[tuple[int, tuple[str, ...]], Rates | None] = {}
        self._lock = threading.Lock()

    def price(self, provider: str | None, models: Sequence[str | None], usage: Usage) -> Price | None:
        """The cost of ``usage`` at ``provider`` for the first of ``models`` (answered, asked) with a price."""
        if not provider:
            return None
        provider_key = provider.lower()
        for model in models:
            if not model:
                continue
            found = self._lookup(provider_key, model.lower())
            override = self._override(provider_key, model.lower(), found)
            if override is not None:
                return self._priced(override, usage, PRICES_FILE_TABLE)
            if found is not None:
                return self._priced(found[1].get_prices(_now()), usage, self._table)
        return None

    def _override(self, provider: str, model: str, found: tuple[Provider, ModelInfo] | None) -> ModelPrice | None:
        if not self._overrides:
            return None
        names = (model, found[1].id.lower()) if found is not None else (model,)
        for name in names:
            for key in ((provider, name), ("*", name)):
                if key in self._overrides:
                    return self._overrides[key]
        return None

    def _lookup(self, provider: str, model: str) -> tuple[Provider, ModelInfo] | None:
        """genai-prices' provider and model, remembered (its own caches grow with every name asked)."""
        snapshot = get_snapshot()
        if snapshot is not self._snapshot:  # UpdatePrices swapped the table in
            with self._lock:
                self._snapshot, self._models, self._rates = snapshot, {}, {}
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        try:
            found_provider = snapshot.find_provider(None, provider, None)
        except LookupError:
            found = None
        else:
            info = found_provider.find_model(model, all_providers=snapshot.providers)
            found = (found_provider, info) if info is not None else None
        with self._lock:
            if len(self._models) >= MAX_CACHED:
                self._models = {}
            self._models[key] = found
        return found

    def _priced(self, model_price: ModelPrice, usage: Usage, table: str) -> Price:
        paid = self._linear(model_price, usage)
        if paid is None:
            paid = _calc(model_price, usage)
        return Price(float(paid[0] + paid[1]), float(paid[0]), float(paid[1]), table)

    def _linear(self, model_price: ModelPrice, usage: Usage) -> tuple[Decimal, Decimal] | None:
        """The price from per-token rates, when they hold for this usage (below any tier)."""
        counts = reported(usage)
        floor = _tier_floor(model_price)
        if floor is not None and int(usage.input_tokens) >= floor:
            return None
        key = (id(model_price), tuple(sorted(counts)))
        if key not in self._rates:
            rates = _derive_rates(model_price, key[1])
            if rates is not None and _apply(rates, counts) != _calc(model_price, usage):
                rates = None  # not linear after all: genai-prices prices every call
            with self._lock:
                if len(self._rates) >= MAX_CACHED:
                    self._rates = {}
                self._rates[key] = rates
        rates = self._rates[key]
        return None if rates is None else _apply(rates, counts)


def _apply(rates: Rates, reported: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    paid_in = sum((rates[k][0] * Decimal(v) for k, v in reported.items()), Decimal(0))
    paid_out = sum((rates[k][1] * Decimal(v) for k, v in reported.items()), Decimal(0))
    return paid_in, paid_out


def _now() -> datetime:
    return datetime.now(tz=timezone.utc)
