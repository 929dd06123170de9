"""Spotlight (Sentry's local viewer, npm ``@spotlightjs/spotlight``) as the demo runs it.

Installed from tools/spotlight/package-lock.json by scripts/npm-ci.sh (cached outside the repo
under the lockfile's hash) and started by scripts/spotlight.sh on a free loopback port. Its own
telemetry to sentry.io goes to a proxy port that refuses connections, so nothing leaves the
machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .lifecycle import ProcessServer
from .ports import LOOPBACK, RefusedPort, free_port
from .processes import ManagedProcess, retry_port_clash

__all__ = ["NPM_CI", "REPO_ROOT", "SPOTLIGHT_SCRIPT", "NpmInstallFailed", "SpotlightServer", "npm_project"]

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_CI = REPO_ROOT / "scripts" / "npm-ci.sh"
SPOTLIGHT_SCRIPT = REPO_ROOT / "scripts" / "spotlight.sh"


class NpmInstallFailed(RuntimeError):
    """scripts/npm-ci.sh failed (no Node.js, no registry, a lockfile mismatch...)."""


def npm_project(project: str, timeout: float = 900.0) -> Path:
    """The cached ``npm ci`` install of ``project`` (e.g. ``tools/spotlight``): its directory."""
    done = subprocess.run(
        ["bash", str(NPM_CI), project],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not (Path(lines[-1]) / "node_modules").is_dir():
        raise NpmInstallFailed(f"{NPM_CI} {project} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return Path(lines[-1])


class SpotlightServer(ProcessServer):
    """One Spotlight sidecar + UI on a free loopback port; the SDK posts to ``stream_url``."""

    def __init__(self, workdir: Path, *, start_timeout: float = 60.0) -> None:
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.port = 0
        self._proxy: RefusedPort | None = None
        self._process: ManagedProcess | None = None

    def start(self) -> SpotlightServer:
        npm_project("tools/spotlight")  # install outside the start timeout
        self._proxy = RefusedPort()
        self._process = retry_port_clash(self._launch)
        return self

    def _launch(self) -> ManagedProcess:
        assert self._proxy is not None
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "SPOTLIGHT_PORT": str(self.port),
            "SPOTLIGHT_TELEMETRY_PROXY": f"http://{LOOPBACK}:{self._proxy.port}",
        }
        process = ManagedProcess(
            ["bash", str(SPOTLIGHT_SCRIPT)], log_path=self.workdir / "spotlight.log", env=env, cwd=self.workdir
        )
        # The UI page, not only /health: a broken dependency once failed every request but that.
        return process.start(ready_url=f"{self.ui_url}/", ready_timeout=self.start_timeout)

    def stop(self) -> None:
        super().stop()
        if self._proxy is not None:
            self._proxy.close()

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def stream_url(self) -> str:
        """What ``SENTRY_SPOTLIGHT`` is set to."""
        return f"http://{LOOPBACK}:{self.port}/stream"
