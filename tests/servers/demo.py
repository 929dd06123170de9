"""scripts/demo.sh run as a newcomer runs it, every port a free loopback port.

The demo starts the stub provider, Spotlight (when Node.js is there) and the instrumented
gateway; ``Demo`` waits for the gateway and keeps what the script printed (``output()``) and
its log directory. Spotlight's own telemetry goes to a port held closed for the test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .lifecycle import ProcessServer
from .npm import REPO_ROOT, npm_project
from .ports import LOOPBACK, RefusedPort, free_port
from .processes import ManagedProcess, retry_port_clash

__all__ = ["DEMO_SCRIPT", "Demo"]

DEMO_SCRIPT = REPO_ROOT / "scripts" / "demo.sh"


class Demo(ProcessServer):
    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        path: str | None = None,
        spotlight_port: int | None = None,
        start_timeout: float = 180.0,
    ) -> None:
        self.workdir = workdir
        self.log_dir = workdir / "demo-logs"
        self.extra_env = dict(env or {})
        self.path = path or os.environ.get("PATH", "/usr/bin:/bin")
        self.given_spotlight_port = spotlight_port
        self.start_timeout = start_timeout
        self.gateway_port = self.provider_port = self.metrics_port = self.spotlight_port = 0
        self._proxy: RefusedPort | None = None
        self._process: ManagedProcess | None = None

    def start(self) -> Demo:
        npm_project("tools/spotlight")  # a first install is slow: outside the start timeout
        self._proxy = RefusedPort()
        try:
            self._process = retry_port_clash(self._launch)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> ManagedProcess:
        assert self._proxy is not None
        self.gateway_port, self.provider_port, self.metrics_port = free_port(), free_port(), free_port()
        self.spotlight_port = self.given_spotlight_port or free_port()
        env = {
            "PATH": self.path,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "DEMO_GATEWAY_PORT": str(self.gateway_port),
            "DEMO_PROVIDER_PORT": str(self.provider_port),
            "DEMO_METRICS_PORT": str(self.metrics_port),
            "DEMO_SPOTLIGHT_PORT": str(self.spotlight_port),
            "DEMO_LOG_DIR": str(self.log_dir),
            "SPOTLIGHT_TELEMETRY_PROXY": f"http://{LOOPBACK}:{self._proxy.port}",
            **({"OGZ_CACHE": os.environ["OGZ_CACHE"]} if "OGZ_CACHE" in os.environ else {}),
            **self.extra_env,
        }
        process = ManagedProcess(
            ["bash", str(DEMO_SCRIPT)], log_path=self.workdir / "demo.out", env=env, cwd=REPO_ROOT, stop_timeout=20
        )
        return process.start(ready_url=f"{self.gateway_url}/health", ready_timeout=self.start_timeout)

    def stop(self) -> None:
        super().stop()
        if self._proxy is not None:
            self._proxy.close()

    def output(self) -> str:
        """What the demo printed (its own lines and the gateway's log)."""
        return self.logs()

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def provider_url(self) -> str:
        return f"http://{LOOPBACK}:{self.provider_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    @property
    def spotlight_ui(self) -> str:
        return f"http://localhost:{self.spotlight_port}"
