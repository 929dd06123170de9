"""Daemon threads for waits the SDKs do not bound: a stuck flush never holds the process up."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .log import contained


def in_background(what: str, call: Callable[[], object]) -> threading.Event:
    """Run ``call`` on a daemon thread (contained); the event is set when it returns.

    The caller waits on the event as long as it wants; a call stuck on a dead endpoint
    never holds the process up at exit.
    """
    done = threading.Event()

    def run() -> None:
        try:
            with contained(what):
                call()
        finally:
            done.set()

    threading.Thread(target=run, name=f"otel_gatewayz-{what.replace(' ', '-')}", daemon=True).start()
    return done
