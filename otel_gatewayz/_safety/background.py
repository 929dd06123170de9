"""Daemon threads for waits the SDKs do not bound: a stuck flush never holds the process up."""

from __future__ import annotations

import os
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


class OwnThread:
    """One daemon thread running ``target``, started on first use and again in a forked child.

    Threads do not survive ``fork``: a pre-fork server's workers inherit the object with a dead
    thread, so every use checks the process id before trusting it.
    """

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def running(self) -> bool:
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def ensure(self) -> bool:
        """Start the thread if this process has none; True when it was started now."""
        if self.running():
            return False
        with self._lock:
            if self.running():
                return False
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for the thread to end (after its target was told to stop)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout)
