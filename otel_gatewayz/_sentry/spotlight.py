"""Spotlight delivery made visible: a refused or failing local viewer is counted and logged once.

sentry-sdk sends to Spotlight quietly: refused connections go to its debug log and an HTTP 500
counts as delivered. A newcomer then opens an empty viewer with no clue why. The client's
Spotlight sender (``client.spotlight.http``, a urllib3 pool) is watched instead: every failure
is counted (``gatewayz_telemetry_dropped_total{signal="spotlight"}``) and logged once per reason.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk

from .._metrics.drops import DropCounter


def watch_spotlight(drops: DropCounter) -> bool:
    """Wrap the active client's Spotlight sender; False when there is none to watch."""
    spotlight = getattr(sentry_sdk.get_client(), "spotlight", None)
    http = getattr(spotlight, "http", None)
    request = getattr(http, "request", None)
    if spotlight is None or http is None or not callable(request):
        return False
    url = str(getattr(spotlight, "url", "Spotlight"))

    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            response = request(*args, **kwargs)
        except Exception as exc:
            drops.count(
                "spotlight", "unreachable", what=f"Spotlight at {url} cannot be reached", detail=type(exc).__name__
            )
            raise
        status = getattr(response, "status", 200)
        if isinstance(status, int) and status >= 400:
            body = bytes(getattr(response, "data", b"") or b"")[:200].decode(errors="replace")
            drops.count("spotlight", f"http_{status}", what=f"Spotlight at {url} refused an envelope", detail=body)
        return response

    http.request = checked
    return True
