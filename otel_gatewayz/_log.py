"""The distro's own logger, and "log once" so a failing hook never floods the logs."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("otel_gatewayz")
_seen: set[str] = set()
_seen_lock = threading.Lock()


def ensure_visible() -> None:
    """Print our INFO lines even when the app configured no logging (uvicorn configures its own)."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_once(key: str, level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log ``message`` the first time ``key`` is seen in this process."""
    with _seen_lock:
        if key in _seen:
            return
        _seen.add(key)
    logger.log(level, message, *args, exc_info=exc_info)


def contained(where: str) -> _Contained:
    """``with contained("x"):`` swallows and logs (once) any failure of our own code."""
    return _Contained(where)


class _Contained:
    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        log_once(
            f"failure:{self.where}:{type(exc).__name__}",
            logging.ERROR,
            "otel_gatewayz: %s failed (%s); the request goes on",
            self.where,
            type(exc).__name__,
            exc_info=True,
        )
        return True
