"""A subprocess with a log file, an HTTP readiness check and a bounded, sure stop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from .ports import wait_http

__all__ = ["ManagedProcess", "ProcessDied", "retry_port_clash"]

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Resolved in the parent: the child between fork and exec must not load libraries.
_prctl = _load_prctl()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without stopping us, so no server leaks."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class ProcessDied(RuntimeError):
    """The process exited before it became ready; ``logs`` holds what it printed."""

    def __init__(self, message: str, logs: str) -> None:
        super().__init__(message)
        self.logs = logs


class ManagedProcess:
    """One server process: started in its own process group, output in ``log_path``.

    ``stop()`` sends ``stop_signal`` to the process, then SIGKILLs the whole group after
    ``stop_timeout`` so a wedged server (or its workers) never outlives the test.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 10.0,
    ) -> None:
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, ready_url: str | None = None, ready_timeout: float = 30.0) -> ManagedProcess:
        """Start the process; with ``ready_url``, return only once that URL answers."""
        if self._popen is not None:
            raise RuntimeError("already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl is pre-resolved and async-signal-safe
            )
        if ready_url is not None:
            try:
                self.wait_http(ready_url, ready_timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Wait for ``url`` to answer; raise ProcessDied at once if the process exits."""
        try:
            wait_http(url, timeout, alive=lambda: self.running, describe=self._describe)
        except RuntimeError as err:
            if not self.running:
                raise ProcessDied(str(err), self.logs()) from None
            raise

    def stop(self) -> int | None:
        """Stop the process (idempotent) and return its exit code."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            try:
                popen.send_signal(self.stop_signal)
                popen.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                # The leader is not reaped yet, so its pgid still names only our processes.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        return popen.returncode

    def logs(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _describe(self) -> str:
        code = self._popen.poll() if self._popen is not None else None
        command = " ".join(self.argv)
        return f"$ {command}\n(exit code {code})\n--- {self.log_path} ---\n{self.logs()[-8000:]}"

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def retry_port_clash(start: Callable[[], T], attempts: int = 3) -> T:
    """Call ``start`` again when the server died because its free port got taken meanwhile.

    ``start`` must pick fresh ports on every call.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except ProcessDied as err:
            if attempt == attempts or "address already in use" not in err.logs.lower():
                raise
    raise AssertionError("unreachable")
