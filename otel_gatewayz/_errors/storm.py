"""Storm control: a budget of full Sentry events per fingerprint per window; the rest counted, not built.

A provider outage makes every request fail the same way. The first ``N`` errors of a
fingerprint in each window become full events; the others are only counted here (the metrics
count every error regardless). What was suppressed is reported once: on the group's next full
event (:meth:`EventBudget.admit` returns it) or in the periodic summary (:meth:`take_suppressed`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Fingerprint = tuple[str, ...]
# On a request's root span: False when storm control suppressed its error event and its fingerprint
# spent the window's budget of kept traces too (GATEWAYZ_KEEP_TRACES drops that trace).
TRACE_BUDGET_ATTR = "gatewayz.error.trace_kept"
# Fingerprints tracked at once; past it, windows that ended are forgotten first, then the oldest.
MAX_FINGERPRINTS = 10_000


class EventBudget:
    """Thread-safe per-fingerprint fixed windows of at most ``limit`` admitted events."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        # fingerprint -> [window start, admitted in the window, suppressed not yet reported]
        self._windows: dict[Fingerprint, list[float]] = {}

    def admit(self, fingerprint: Fingerprint) -> int | None:
        """None: suppress this error. Else admit it; the int is the suppressed count it reports."""
        now = self._clock()
        with self._lock:
            entry = self._windows.get(fingerprint)
            if entry is None:
                if len(self._windows) >= MAX_FINGERPRINTS:
                    self._evict(now)
                entry = self._windows[fingerprint] = [now, 0.0, 0.0]
            elif now - entry[0] >= self.window:
                entry[0], entry[1] = now, 0.0
            if entry[1] >= self.limit:
                entry[2] += 1
                return None
            entry[1] += 1
            reported = int(entry[2])
            entry[2] = 0.0
            return reported

    def take_suppressed(self) -> dict[Fingerprint, int]:
        """The suppressed counts not yet reported, per fingerprint; they count as reported now."""
        with self._lock:
            taken = {fp: int(entry[2]) for fp, entry in self._windows.items() if entry[2]}
            for fp in taken:
                self._windows[fp][2] = 0.0
            return taken

    def give_back(self, counts: dict[Fingerprint, int]) -> None:
        """Counts a summary could not send: reported with the next one instead."""
        with self._lock:
            for fp, count in counts.items():
                entry = self._windows.setdefault(fp, [self._clock(), 0.0, 0.0])
                entry[2] += count

    def _evict(self, now: float) -> None:
        ended = [fp for fp, entry in self._windows.items() if now - entry[0] >= self.window and not entry[2]]
        for fp in ended or list(self._windows)[: max(1, len(self._windows) // 10)]:
            del self._windows[fp]
