"""The package is ready to publish: the sdist and wheel build, ``twine check --strict`` accepts
them (the README renders on PyPI), their metadata carry the license, classifiers and project
URLs, and every link of the README points inside the repository.

scripts/test.sh builds ``dist/`` and passes it as ``OGZ_DIST_DIR``; run alone, this module
builds into a temporary directory (``python -m build``, which fetches its build backend).
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("OGZ_DIST_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _one(dist: Path, pattern: str) -> Path:
    [path] = sorted(dist.glob(pattern))
    return path


def test_twine_accepts_the_sdist_and_the_wheel(dist: Path) -> None:
    artefacts = [_one(dist, "*.whl"), _one(dist, "*.tar.gz")]
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, artefacts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_wheel_metadata_carry_license_classifiers_and_urls(dist: Path) -> None:
    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        names = wheel.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_string(wheel.read(metadata_name).decode("utf-8"))
        [license_name] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        license_text = wheel.read(license_name).decode()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert license_text == (REPO_ROOT / "LICENSE").read_text()
    classifiers = metadata.get_all("Classifier") or []
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert "Programming Language :: Python :: 3" in classifiers
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= urls.keys()
    assert all(url.startswith("https://") for url in urls.values())
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload().strip() == README.read_text().strip()
    assert any(name.startswith("otel_gatewayz/") and name.endswith("py.typed") for name in names)


def test_sdist_carries_the_license_and_the_readme(dist: Path) -> None:
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        names = {Path(*Path(name).parts[1:]).as_posix() for name in sdist.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "otel_gatewayz/__init__.py"} <= names


def test_readme_links_stay_inside_the_repository() -> None:
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets, "no links found"
    for target in targets:
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        if target.startswith("#"):
            anchor = target[1:]
            headings = {
                re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)
            }
            assert anchor in headings, f"README link {target} names no heading"
            continue
        path = (REPO_ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO_ROOT), f"README link {target} points outside the repository"
        assert path.exists(), f"README link {target} points at nothing"


def test_the_spec_the_project_answers_to_is_in_the_repository() -> None:
    spec = REPO_ROOT / "docs" / "error-logging-spec.md"
    assert spec.read_text().startswith("# Sentry Error Logging & Monitoring")
    assert "docs/error-logging-spec.md" in README.read_text()


def test_the_changelog_has_the_current_version() -> None:
    version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert f"## [{version.group(1)}]" in (REPO_ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("sentry_sdk", ["2.76.0", "3.0.0"])
def test_pip_resolves_the_wheel_beside_each_sentry_sdk_major(dist: Path, sentry_sdk: str) -> None:
    """A project already on either major can install us (``ResolutionImpossible`` was the 3.0 report)."""
    wheel = _one(dist, "*.whl")
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-"]
    done = subprocess.run(
        [*pip, str(wheel), f"sentry-sdk=={sentry_sdk}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)["install"]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report}
    assert chosen["sentry-sdk"] == sentry_sdk and "otel-gatewayz" in chosen
