"""Headless Debian Chromium driven by playwright-core (tests/browser/drive.cjs).

``Browser(workdir).run(steps)`` runs the steps in a fresh profile and returns what the page
rendered: ``snapshots[name]`` has ``text`` (the body's innerText), ``url`` and ``screenshot`` (a
PNG to look at), ``failures`` lists the steps that timed out. playwright-core comes from
tests/browser/package-lock.json (scripts/npm-ci.sh) and never downloads a browser.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .npm import REPO_ROOT, npm_project

__all__ = ["CHROMIUM", "DRIVER", "Browser", "BrowserMissing"]

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = REPO_ROOT / "tests" / "browser" / "drive.cjs"


class BrowserMissing(RuntimeError):
    """No /usr/bin/chromium: run scripts/setup-test-servers.sh (Debian package chromium)."""


class Browser:
    def __init__(self, workdir: Path, *, chromium: Path = CHROMIUM, timeout: float = 300.0) -> None:
        if not chromium.exists():
            raise BrowserMissing(f"{chromium} missing: run scripts/setup-test-servers.sh")
        self.workdir = workdir
        self.chromium = chromium
        self.timeout = timeout
        self.node_modules = npm_project("tests/browser") / "node_modules"
        self.runs = 0

    def run(self, steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
        run_dir = self.workdir / f"browser-{self.runs}"
        self.runs += 1
        run_dir.mkdir(parents=True, exist_ok=True)
        plan = {
            "chromium": str(self.chromium),
            "userDataDir": str(run_dir / "profile"),  # a fresh profile every run
            "outDir": str(run_dir),
            "steps": list(steps),
        }
        plan_path = run_dir / "steps.json"
        plan_path.write_text(json.dumps(plan, indent=2))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(run_dir),
            "NODE_PATH": str(self.node_modules),
        }
        done = subprocess.run(
            ["node", str(DRIVER), str(plan_path)],
            env=env,
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{DRIVER} failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result
