"""The otel_gatewayz collector, built from collector/builder-config.yaml, on loopback ports.

``collector_binary()`` builds the collector with scripts/build-collector.sh (or reuses the
binary cached under the manifest's hash); ``CollectorServer`` runs it with
collector/config.yaml (plus overlays), every listener on a free loopback port, and waits for
its health check. The collector gets a clean environment: only the ``COLLECTOR_*`` variables
the config reads and what the test passes, so the shell's OTEL_* variables cannot leak in.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from .lifecycle import Lifecycle
from .ports import LOOPBACK, free_port
from .processes import ManagedProcess, retry_port_clash

__all__ = [
    "BACK_OVERLAY",
    "BUILDER_CONFIG",
    "BUILD_SCRIPT",
    "COLLECTOR_CONFIG",
    "FRONT_OVERLAY",
    "SENTRY_OVERLAY",
    "CollectorBuildFailed",
    "CollectorServer",
    "collector_binary",
    "collector_env",
    "validate",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-collector.sh"
BUILDER_CONFIG = REPO_ROOT / "collector" / "builder-config.yaml"
COLLECTOR_CONFIG = REPO_ROOT / "collector" / "config.yaml"
SENTRY_OVERLAY = REPO_ROOT / "collector" / "config.sentry.yaml"
# The two-tier profile: fronts route traces by trace id to backs, which tail-sample them.
FRONT_OVERLAY = REPO_ROOT / "collector" / "config.front.yaml"
BACK_OVERLAY = REPO_ROOT / "collector" / "config.back.yaml"

# A cold build downloads a few hundred modules and compiles for minutes on two cores.
BUILD_TIMEOUT = 1800.0


class CollectorBuildFailed(RuntimeError):
    """scripts/build-collector.sh failed (no Go, no module proxy, a compile error...)."""


def collector_binary(timeout: float = BUILD_TIMEOUT) -> Path:
    """Path of the built collector: ``OGZ_COLLECTOR_BIN`` (what scripts/test.sh built), else
    the build script's output (instant when the cache has the binary)."""
    given = os.environ.get("OGZ_COLLECTOR_BIN")
    if given:
        if not os.access(given, os.X_OK):
            raise CollectorBuildFailed(f"OGZ_COLLECTOR_BIN={given} is not an executable")
        return Path(given)
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        raise CollectorBuildFailed(f"{BUILD_SCRIPT} did not finish within {timeout}s") from err
    lines = done.stdout.strip().splitlines()
    binary = Path(lines[-1]) if lines else None
    if done.returncode != 0 or binary is None or not os.access(binary, os.X_OK):
        raise CollectorBuildFailed(f"{BUILD_SCRIPT} failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
    return binary


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    env.update(extra or {})
    return env


def collector_env(
    *,
    grpc_port: int,
    http_port: int,
    prometheus_port: int,
    health_port: int,
    telemetry_port: int,
    traces_endpoint: str,
    debug_verbosity: str = "basic",
) -> dict[str, str]:
    """The ``COLLECTOR_*`` variables collector/config.yaml reads, all listeners on loopback."""
    return {
        "COLLECTOR_OTLP_GRPC_ENDPOINT": f"{LOOPBACK}:{grpc_port}",
        "COLLECTOR_OTLP_HTTP_ENDPOINT": f"{LOOPBACK}:{http_port}",
        "COLLECTOR_PROMETHEUS_ENDPOINT": f"{LOOPBACK}:{prometheus_port}",
        "COLLECTOR_HEALTH_ENDPOINT": f"{LOOPBACK}:{health_port}",
        "COLLECTOR_TELEMETRY_HOST": LOOPBACK,
        "COLLECTOR_TELEMETRY_PORT": str(telemetry_port),
        "COLLECTOR_TRACES_OTLP_ENDPOINT": traces_endpoint,
        "COLLECTOR_DEBUG_VERBOSITY": debug_verbosity,
    }


def validate(
    binary: Path, configs: Sequence[Path], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``otelcol-gatewayz validate`` on ``configs`` (merged in order) with a clean ``env``."""
    argv = [str(binary), "validate", *(f"--config=file:{path}" for path in configs)]
    return subprocess.run(
        argv,
        env=_clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


class CollectorServer(Lifecycle):
    """One collector process in ``workdir`` with every listener on a free loopback port.

    ``traces_endpoint`` is where ``otlp_http/traces`` sends (e.g. an OtlpRecorder's
    endpoint); by default a loopback port nothing listens on. ``env`` is added last, so it can
    override any ``COLLECTOR_*`` variable or supply an overlay's (e.g. ``SENTRY_*``).
    """

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        *,
        configs: Sequence[Path] = (COLLECTOR_CONFIG,),
        traces_endpoint: str | None = None,
        debug_verbosity: str = "basic",
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.configs = list(configs)
        self.traces_endpoint = traces_endpoint
        self.debug_verbosity = debug_verbosity
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.grpc_port = self.http_port = self.prometheus_port = 0
        self.health_port = self.telemetry_port = 0
        self._process: ManagedProcess | None = None

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = retry_port_clash(self._launch)
        return self

    def _launch(self) -> ManagedProcess:
        self.grpc_port, self.http_port, self.prometheus_port = free_port(), free_port(), free_port()
        self.health_port, self.telemetry_port = free_port(), free_port()
        env = collector_env(
            grpc_port=self.grpc_port,
            http_port=self.http_port,
            prometheus_port=self.prometheus_port,
            health_port=self.health_port,
            telemetry_port=self.telemetry_port,
            traces_endpoint=self.traces_endpoint or f"http://{LOOPBACK}:{free_port()}",
            debug_verbosity=self.debug_verbosity,
        )
        env.update(self.extra_env)
        argv = [str(self.binary), *(f"--config=file:{path}" for path in self.configs)]
        process = ManagedProcess(argv, log_path=self.workdir / "collector.log", env=_clean_env(env), cwd=self.workdir)
        return process.start(ready_url=self.health_url, ready_timeout=self.start_timeout)

    def stop(self) -> int | None:
        """SIGTERM: the collector flushes its batches and exits (idempotent)."""
        return self._process.stop() if self._process is not None else None

    def logs(self) -> str:
        return self._process.logs() if self._process is not None else ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``http/protobuf``."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.grpc_port}"

    @property
    def prometheus_target(self) -> str:
        """``host:port`` of the prometheus exporter, for a scrape config."""
        return f"{LOOPBACK}:{self.prometheus_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.prometheus_target}/metrics"

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/"
