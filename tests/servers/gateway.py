"""The example gateway run the way users run it, plus the stub upstream provider.

The gateway runs as ``opentelemetry-instrument uvicorn examples.gateway.app:app`` from the
venv pytest runs in, with a clean environment: only what the test passes reaches it, so a
developer's shell variables cannot change what an end-to-end test sees.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .lifecycle import Lifecycle, ProcessServer
from .ports import LOOPBACK, free_port
from .processes import ManagedProcess, ProcessDied, retry_port_clash

__all__ = [
    "DEFAULT_APP",
    "DEFAULT_PROVIDER_APP",
    "REPO_ROOT",
    "Gateway",
    "GatewayFactory",
    "StubProvider",
    "base_env",
    "venv_bin",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_APP = "examples.gateway.app:app"
DEFAULT_PROVIDER_APP = "examples.gateway.provider:app"


def venv_bin() -> Path:
    """The bin directory of the venv running pytest (not resolved: a venv's python is a symlink)."""
    return Path(sys.executable).parent


def base_env(bin_dir: Path | None = None) -> dict[str, str]:
    """The minimal environment every launched server starts from."""
    bin_dir = bin_dir or venv_bin()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",  # logs() sees output as it happens
    }


class StubProvider(ProcessServer):
    """The stub upstream (plain uvicorn, never instrumented) on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        *,
        app: str = DEFAULT_PROVIDER_APP,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        bin_dir: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.app = app
        self.env = dict(env or {})
        self.cwd = cwd
        self.bin_dir = bin_dir or venv_bin()
        self.start_timeout = start_timeout
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> StubProvider:
        self._process = retry_port_clash(self._launch)
        return self

    def spawn(self) -> None:
        """Start the process without waiting (the gateway boots meanwhile); then :meth:`wait_ready`."""
        self._process = self._launch(wait=False)

    def wait_ready(self) -> None:
        """Wait for a spawned provider; one that died (its port got taken) is started again, waited for."""
        assert self._process is not None
        try:
            self._process.wait_http(f"{self.url}/health", self.start_timeout)
        except ProcessDied as err:
            if "address already in use" not in err.logs.lower():
                raise
            self.start()

    def _launch(self, wait: bool = True) -> ManagedProcess:
        self.port = free_port()
        argv = [
            str(self.bin_dir / "uvicorn"),
            self.app,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]
        env = {**base_env(self.bin_dir), **self.env}
        process = ManagedProcess(argv, log_path=self.workdir / "provider.log", env=env, cwd=self.cwd)
        return process.start(ready_url=f"{self.url}/health" if wait else None, ready_timeout=self.start_timeout)


class Gateway(Lifecycle):
    """The instrumented gateway (and, unless ``provider_url`` is given, its stub provider).

    ``env`` is layered last, so a test may override any default (``metrics_url`` follows an
    overridden ``OTEL_EXPORTER_PROMETHEUS_PORT``). To use another upstream, pass
    ``provider_url`` rather than ``GATEWAY_PROVIDER_URL``: then no stub is started.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        app: str = DEFAULT_APP,
        provider_app: str = DEFAULT_PROVIDER_APP,
        provider_url: str | None = None,
        provider_env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        bin_dir: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        instrumented: bool = True,
    ) -> None:
        self.workdir = workdir
        self.instrumented = instrumented  # False: plain uvicorn, the baseline to compare bytes with
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.app = app
        self.cwd = cwd
        self.bin_dir = bin_dir or venv_bin()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout  # exporters may flush on shutdown; then SIGKILL
        self.port = 0
        self.metrics_port = 0
        self.launched_env: dict[str, str] = {}
        self._given_provider_url = provider_url
        self.provider: StubProvider | None = None
        if provider_url is None:
            self.provider = StubProvider(workdir, app=provider_app, env=provider_env, cwd=cwd, bin_dir=self.bin_dir)
        self._process: ManagedProcess | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Gateway:
        """Both processes boot at once (each is seconds of imports); the gateway's provider URL is fixed first."""
        try:
            if self.provider is not None:
                self.provider.spawn()
            self._process = retry_port_clash(self._launch)
            if self.provider is not None:
                port = self.provider.port
                self.provider.wait_ready()
                if self.provider.port != port:  # started again on another port: the gateway must follow
                    self._process.stop()
                    self._process = retry_port_clash(self._launch)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> ManagedProcess:
        self.port = free_port()
        env = {
            **base_env(self.bin_dir),
            "OTEL_EXPORTER_PROMETHEUS_HOST": LOOPBACK,
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port()),
            "GATEWAY_PROVIDER_URL": self.provider_url,
            **self.env,
        }
        self.metrics_port = int(env["OTEL_EXPORTER_PROMETHEUS_PORT"])
        self.launched_env = env
        argv = [
            *([str(self.bin_dir / "opentelemetry-instrument")] if self.instrumented else []),
            str(self.bin_dir / "uvicorn"),
            self.app,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        process = ManagedProcess(
            argv,
            log_path=self.workdir / "gateway.log",
            env=env,
            cwd=self.cwd,
            stop_timeout=self.stop_timeout,
        )
        return process.start(ready_url=f"{self.base_url}/health", ready_timeout=self.start_timeout)

    def stop(self) -> None:
        """Stop the gateway first (it may still flush to the provider), then the provider."""
        if self._process is not None:
            self._process.stop()
        if self.provider is not None:
            self.provider.stop()

    # -- addresses and output --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    @property
    def metrics_target(self) -> str:
        """``host:port`` of the metrics endpoint, for ``PrometheusServer(targets=...)``."""
        return f"{LOOPBACK}:{self.metrics_port}"

    @property
    def provider_url(self) -> str:
        if self._given_provider_url is not None:
            return self._given_provider_url
        assert self.provider is not None
        return self.provider.url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def logs(self) -> str:
        """What the gateway printed (stdout and stderr)."""
        return self._process.logs() if self._process is not None else ""

    def provider_logs(self) -> str:
        return self.provider.logs() if self.provider is not None else ""


class GatewayFactory(Protocol):
    """What the ``gateway_factory`` fixture returns: start a gateway, stopped at teardown."""

    def __call__(
        self, env: Mapping[str, str] | None = None, extra_args: Sequence[str] = (), **kwargs: Any
    ) -> Gateway: ...
