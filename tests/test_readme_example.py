"""The README's "Testing your instrumentation" example, run verbatim with pytest where a user would run it.

A venv holding only the built wheel (with its dependencies), pytest, FastAPI and httpx: once with
the newest sentry-sdk in range (3.x), once with the oldest 2.x we support (``tests/stacks/sentry2.txt``).
The venvs are cached in ``$OGZ_CACHE/readme-example/`` keyed by what they are built from
(pyproject.toml, the extra requirements, the Python version); the wheel is installed afresh each run.
scripts/test.sh builds ``dist/`` and passes it as ``OGZ_DIST_DIR``; run alone, this module builds the
wheel into a temporary directory (``python -m build``, which fetches its build backend).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
USER_PACKAGES = ("pytest", "fastapi", "httpx")
# sentry-sdk major -> the extra requirement lines that pick it (none: the newest in our range).
SENTRY_MAJORS = {"3": [], "2": [(REPO_ROOT / "tests" / "stacks" / "sentry2.txt").read_text()]}


def readme_example() -> str:
    """The one Python block of the README's "Testing your instrumentation" section, as written there."""
    section = README.read_text().split("\n## Testing your instrumentation\n", 1)[1].split("\n## ", 1)[0]
    [block] = [part.split("```", 1)[0] for part in section.split("```python\n")[1:]]
    return block


def _run(*command: str | Path, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("OGZ_DIST_DIR")
    out = Path(given) if given else tmp_path_factory.mktemp("dist")
    if not given:
        done = _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, REPO_ROOT, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [built] = sorted(out.glob("otel_gatewayz-*.whl"))
    return built


def _venv(major: str, wheel: Path) -> Path:
    """The cached venv for ``major`` (built once per key), with ``wheel`` installed afresh."""
    requirements = SENTRY_MAJORS[major]
    key = hashlib.sha256(
        "\n".join([(REPO_ROOT / "pyproject.toml").read_text(), *requirements, *USER_PACKAGES, sys.version]).encode()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("OGZ_CACHE") or Path.home() / ".cache" / "otel_gatewayz") / "readme-example"
    venv = cache / f"sentry{major}-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        assert _run(sys.executable, "-m", "venv", venv).returncode == 0
        pinned = venv / "sentry.txt"
        pinned.write_text("".join(requirements))
        done = _run(python, "-m", "pip", "install", "-q", wheel, *USER_PACKAGES, "-r", pinned)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        (venv / ".complete").touch()
    done = _run(python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


@pytest.mark.parametrize("major", sorted(SENTRY_MAJORS, reverse=True), ids=lambda major: f"sentry-sdk {major}.x")
def test_the_readme_example_passes_with_only_the_package_pytest_and_fastapi(major: str, wheel: Path, tmp_path: Path):
    venv = _venv(major, wheel)
    python = venv / "bin" / "python"
    listed = _run(python, "-m", "pip", "list", "--not-required", "--format=json")
    top_level = {entry["name"].lower() for entry in json.loads(listed.stdout)} - {"pip", "setuptools", "wheel"}
    assert top_level == {"otel-gatewayz", *USER_PACKAGES}  # httpx: Starlette's TestClient needs it
    version = _run(python, "-c", "import sentry_sdk; print(sentry_sdk.VERSION)").stdout.strip()
    assert version.split(".")[0] == major
    (tmp_path / "test_gateway.py").write_text(readme_example())

    done = _run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_gateway.py", cwd=tmp_path, timeout=300)

    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout and "warning" not in done.stdout.lower(), done.stdout[-3000:]
