"""The official GenAI instrumentations' metrics get the same bounded model and provider labels as ours.

``opentelemetry-instrumentation-genai-*`` label ``gen_ai.client.*`` with the model a client
asked for, whatever it is: unbounded series. Every ``gen_ai.*`` measurement's model and provider
names pass through our own limits (:class:`~.instruments.BoundedValues`, shared with our httpx
hooks), before the SDK aggregates. A measurement with a response model and no ``error.type`` is
a provider's answer: its names may take a slot, as our own successful calls do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .instruments import Instruments
from .measurements import Measurement

_MODELS = ("gen_ai.request.model", "gen_ai.response.model")
_PROVIDERS = ("gen_ai.provider.name", "gen_ai.system")


class GenAiLabels:
    """Rewrites a measurement's model and provider attributes to bounded, secret-free labels.

    ``label`` turns a raw name into one fit for a label (empty when it looks like a secret).
    """

    def __init__(self, instruments: Instruments, label: Callable[[Any], str]) -> None:
        self._bounds = ((_MODELS, instruments.models), (_PROVIDERS, instruments.providers))
        self._label = label

    def __call__(self, measurement: Measurement) -> Measurement:
        attributes = measurement.attributes
        if not attributes or not measurement.instrument.name.startswith("gen_ai."):
            return measurement
        served = "error.type" not in attributes and bool(attributes.get("gen_ai.response.model"))
        changed = {}
        for keys, bound in self._bounds:
            for key in keys:
                if key not in attributes:
                    continue
                value = attributes[key]
                name = self._label(value)
                if served:
                    bound.admit(name)
                label = bound(name)
                if label != value:
                    changed[key] = label
        if not changed:
            return measurement
        return dataclasses.replace(measurement, attributes={**attributes, **changed})
