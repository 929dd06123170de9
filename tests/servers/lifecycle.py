"""``with server:`` for every test server: start on enter, stop on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class Lifecycle:
    """Mixin for classes with ``start() -> self`` and ``stop()``."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
