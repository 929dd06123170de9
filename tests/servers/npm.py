"""The repo's npm projects (tools/spotlight, tests/browser), installed with ``npm ci`` from
their committed lockfiles by scripts/npm-ci.sh, cached outside the repo under the lockfile's
hash."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["NPM_CI", "REPO_ROOT", "NpmInstallFailed", "npm_project"]

REPO_ROOT = Path(__file__).resolve().parents[2]
NPM_CI = REPO_ROOT / "scripts" / "npm-ci.sh"


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
