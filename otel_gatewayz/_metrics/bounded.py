"""Bounded label values that follow traffic: the names used most lately keep their labels.

A label set of ``limit`` names. Each served use of a name counts; counts halve every
``half_life`` seconds, so they measure recent traffic. A name outside the set takes a free slot,
or the slot of the least-used labelled name once it is busy (``MIN_USES``) and used more than
twice as much lately (the margin keeps two names from trading a slot back and forth). A burst of
rare names therefore cannot push a busy model into ``other``, and a model launched later gets its
label once it is busy. Every label ever given stays a series in a cumulative exporter, so at most
``lifetime`` names are ever labelled per process: the series count stays bounded. What has no
label counts under ``other``: no use is ever lost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

OVERFLOW = "other"
MIN_USES = 8.0  # recent uses before an unlabelled name may take a labelled one's slot
# Model names look like "gpt-4o", "anthropic/claude-3.5-sonnet:beta"; anything else (spaces,
# keys, long strings) is not let into a label.
_LABEL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")


def fit_for_label(value: str | None) -> bool:
    """Short and made of the characters model, provider and plan names use."""
    return bool(value) and len(value or "") <= 64 and _LABEL_SAFE.fullmatch(value or "") is not None


class BoundedValues:
    """Passes labelled values through and maps the rest to ``other``; the labels follow recent use.

    :meth:`admit` counts one use of a name a provider served (a name a client made up is answered
    with an error and never counts). ``clock`` is injected so tests can move time.
    """

    def __init__(
        self,
        limit: int,
        *,
        half_life: float = 300.0,
        lifetime: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._lifetime = lifetime if lifetime is not None else 4 * limit
        self._max_candidates = 4 * limit
        self._half_life = half_life
        self._clock = clock
        self._labelled: dict[str, float] = {}  # name -> recent uses
        self._candidates: dict[str, float] = {}  # unlabelled served names -> recent uses
        self._ever = 0
        self._next_decay = clock() + half_life
        self._lock = threading.Lock()

    def admit(self, value: str | None) -> None:
        """Count one served use of ``value``; it may take a label (free slot, or a colder name's)."""
        if value is None or (value not in self._labelled and not fit_for_label(value)):
            return
        with self._lock:
            now = self._clock()
            if now >= self._next_decay:
                self._decay(now)
            uses = self._labelled.get(value)
            if uses is not None:
                self._labelled[value] = uses + 1.0
                return
            uses = self._candidates.pop(value, 0.0) + 1.0
            if self._ever >= self._lifetime:
                self._remember(value, uses)
            elif len(self._labelled) < self._limit:
                self._label(value, uses)
            elif uses >= MIN_USES:
                coldest = min(self._labelled, key=self._labelled.__getitem__)
                if uses > 2 * self._labelled[coldest]:
                    self._remember(coldest, self._labelled.pop(coldest))
                    self._label(value, uses)
                else:
                    self._remember(value, uses)
            else:
                self._remember(value, uses)

    def _label(self, value: str, uses: float) -> None:
        self._labelled[value] = uses
        self._ever += 1

    def _remember(self, value: str, uses: float) -> None:
        """Keep counting an unlabelled name; past the bound, the least-used half is forgotten."""
        self._candidates[value] = uses
        if len(self._candidates) > self._max_candidates:
            keep = sorted(self._candidates.items(), key=lambda item: item[1], reverse=True)[: self._max_candidates // 2]
            self._candidates = dict(keep)

    def _decay(self, now: float) -> None:
        halvings = 1 + int((now - self._next_decay) // self._half_life)
        factor = 0.5**halvings
        self._labelled = {name: uses * factor for name, uses in self._labelled.items()}
        self._candidates = {name: uses * factor for name, uses in self._candidates.items() if uses * factor >= 0.25}
        self._next_decay += halvings * self._half_life

    def __call__(self, value: str | None) -> str:
        return value if value and value in self._labelled else OVERFLOW

    @property
    def labelled(self) -> frozenset[str]:
        """The names that have a label now."""
        return frozenset(self._labelled)
