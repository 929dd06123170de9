"""Storm control: a budget of full Sentry events per fingerprint per window; the rest counted, not built.

A provider outage makes every request fail the same way. The first ``N`` errors of a
fingerprint in each window become full events; the others are only counted here (the metrics
count every error regardless). What was suppressed is reported on the group's next full event
(:meth:`EventBudget.admit` returns the count) and in the group's summary event
(:meth:`EventBudget.take_summaries`, sent once per window and at shutdown).

Every suppressed error is answered with the id of its group's next summary event
(:meth:`EventBudget.suppress`), so every id a client is given leads to an event in Sentry. Its
trace is kept within a second per-fingerprint budget, ``TRACE_FACTOR`` times the events' (a
kept trace costs a few batched spans, an event a build and an HTTP request); the summary lists
the kept traces' ids.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Fingerprint = tuple[str, ...]
# On a request's root span: False when storm control suppressed its error event and its fingerprint
# spent the window's budget of kept traces too (GATEWAYZ_KEEP_TRACES drops that trace).
TRACE_BUDGET_ATTR = "gatewayz.error.trace_kept"
# Fingerprints tracked at once; past it, windows that ended are forgotten first, then the oldest.
MAX_FINGERPRINTS = 10_000
# Traces kept per fingerprint per window for errors without a full event: this many times the events' budget.
TRACE_FACTOR = 10
MAX_LISTED_TRACES = 100  # trace ids a summary lists
# Where suppressed errors of fingerprints past MAX_FINGERPRINTS pending summaries are summarised.
OTHER_GROUPS: tuple[str, ...] = ("otel_gatewayz", "other-groups")


@dataclass
class Summary:
    """A group's pending summary event: its id (answered to every suppressed error), count and kept traces."""

    event_id: str
    count: int = 0
    trace_ids: list[str] = field(default_factory=list)


def _new_id() -> str:
    return f"{random.getrandbits(128):032x}"


class EventBudget:
    """Thread-safe per-fingerprint fixed windows of at most ``limit`` admitted events."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        # fingerprint -> [window start, admitted in the window, suppressed not yet reported, traces kept]
        self._windows: dict[Fingerprint, list[float]] = {}
        self._summaries: dict[Fingerprint, Summary] = {}

    def admit(self, fingerprint: Fingerprint) -> int | None:
        """None: suppress this error. Else admit it; the int is the suppressed count it reports."""
        now = self._clock()
        with self._lock:
            entry = self._windows.get(fingerprint)
            if entry is None:
                if len(self._windows) >= MAX_FINGERPRINTS:
                    self._evict(now)
                entry = self._windows[fingerprint] = [now, 0.0, 0.0, 0.0]
            elif now - entry[0] >= self.window:
                entry[0], entry[1], entry[3] = now, 0.0, 0.0
            if entry[1] >= self.limit:
                entry[2] += 1
                return None
            entry[1] += 1
            reported = int(entry[2])
            entry[2] = 0.0
            return reported

    def suppress(self, fingerprint: Fingerprint, trace_id: str | None) -> tuple[str, bool]:
        """For an error :meth:`admit` suppressed: the id to answer (its group's summary event), and keep its trace?"""
        with self._lock:
            entry = self._windows.get(fingerprint)
            keep = entry is not None and entry[3] < self.limit * TRACE_FACTOR
            if entry is not None and keep:
                entry[3] += 1
            if fingerprint not in self._summaries and len(self._summaries) >= MAX_FINGERPRINTS:
                fingerprint = OTHER_GROUPS
            summary = self._summaries.get(fingerprint)
            if summary is None:
                summary = self._summaries[fingerprint] = Summary(_new_id())
            summary.count += 1
            if keep and trace_id is not None and len(summary.trace_ids) < MAX_LISTED_TRACES:
                summary.trace_ids.append(trace_id)
            return summary.event_id, keep

    def take_summaries(self) -> dict[Fingerprint, Summary]:
        """The pending summaries, per fingerprint; the next suppressed error starts a new one."""
        with self._lock:
            taken, self._summaries = self._summaries, {}
            return taken

    def give_back(self, summaries: dict[Fingerprint, Summary]) -> None:
        """Summaries not sent: sent with the next ones instead, under the same ids (already answered)."""
        with self._lock:
            for fp, summary in summaries.items():
                pending = self._summaries.get(fp)
                if pending is None:
                    self._summaries[fp] = summary
                else:  # a newer one exists: it reports the count, the older id still has to be sent
                    self._summaries[(*fp, summary.event_id)] = summary

    def _evict(self, now: float) -> None:
        ended = [fp for fp, entry in self._windows.items() if now - entry[0] >= self.window and not entry[2]]
        for fp in ended or list(self._windows)[: max(1, len(self._windows) // 10)]:
            del self._windows[fp]
