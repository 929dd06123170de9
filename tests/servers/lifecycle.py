"""``with server:`` for every test server: start on enter, stop on exit."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .processes import ManagedProcess


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


class ProcessServer(Lifecycle):
    """A server run as one managed process: stop it, read what it printed."""

    _process: ManagedProcess | None = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def logs(self) -> str:
        return self._process.logs() if self._process is not None else ""
