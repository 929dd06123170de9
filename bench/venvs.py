"""Peer virtualenvs for the benchmark, built once outside the repo and reused.

Each peer gets its own venv under ``${OGZ_CACHE:-~/.cache/otel_gatewayz}/bench-<name>-<hash>``;
the hash covers the requirement list and the pinned versions, so a change rebuilds it. Versions
are pinned to those of the running (dev) environment wherever the package exists there, so
the peers run the same FastAPI, Starlette, uvicorn, httpx, OpenTelemetry and sentry-sdk. A peer
that names a range itself (the two sentry-sdk majors) keeps the dev version only when it is in
that range, else pip picks the newest release in it: the dev env moves between majors, the peers
must not.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

__all__ = ["PEERS", "cache_dir", "constraints", "ensure_venv"]


def _package_dependencies() -> tuple[str, ...]:
    """otel_gatewayz's declared runtime dependencies (from the dev env's metadata of it), extras left out."""
    return tuple(sorted(r for r in metadata.requires("otel-gatewayz") or () if "extra ==" not in r))


# What a user of each peer installs.
PEERS: dict[str, tuple[str, ...]] = {
    # Plain OpenTelemetry. The example app imports otel_gatewayz from the source tree (never
    # installed here, so its distro cannot load): what the package imports comes too (sentry-sdk,
    # genai-prices...), read from its metadata so a new dependency cannot break this peer. No Sentry
    # client is ever initialised in this venv.
    "otel": (
        "opentelemetry-distro",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-exporter-prometheus",
        "opentelemetry-instrumentation-fastapi",
        "opentelemetry-instrumentation-httpx",
        "fastapi",
        "uvicorn",
        "httpx",
        "openai",  # the example calls its provider through the official SDK
        *_package_dependencies(),
    ),
    # sentry-sdk with its own (auto-enabled) FastAPI/Starlette/httpx integrations; no OpenTelemetry.
    # 2.x sends one transaction envelope per sampled request; 3.x streams span v2 items.
    "sentry": ("sentry-sdk>=2.75,<3", "fastapi", "uvicorn", "httpx", "openai"),
    "sentry3": ("sentry-sdk>=3,<4", "fastapi", "uvicorn", "httpx", "openai"),
    # The sampling profiler used by bench/profile_app.py (a wheel with its binary inside).
    "pyspy": ("py-spy",),
}


def cache_dir() -> Path:
    return Path(os.environ.get("OGZ_CACHE") or Path.home() / ".cache" / "otel_gatewayz")


def constraints() -> list[str]:
    """``name==version`` for every distribution of the running environment (ours excluded)."""
    pins = []
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower().replace("_", "-") in ("otel-gatewayz", "pip", "setuptools", "wheel"):
            continue
        pins.append(f"{name}=={dist.version}")
    return sorted(set(pins), key=str.lower)


def peer_pins(requirements: tuple[str, ...], pins: list[str]) -> list[str]:
    """The dev env's pins, less those outside a range the peer names itself (``sentry-sdk>=3,<4``)."""
    ranges = {_name(r.name): r.specifier for r in map(Requirement, requirements) if r.specifier}
    kept = []
    for pin in pins:
        name, version = pin.split("==", 1)
        if _name(name) not in ranges or ranges[_name(name)].contains(version, prereleases=True):
            kept.append(pin)
    return kept


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(name: str, log: bool = True) -> Path:
    """The venv of peer ``name``, built (pip, from PyPI) when missing or out of date."""
    requirements = PEERS[name]
    pins = peer_pins(requirements, constraints())
    key = hashlib.sha256("\n".join([sys.version, *requirements, *pins]).encode()).hexdigest()[:10]
    venv = cache_dir() / f"bench-{name}-{key}"
    if (venv / ".complete").exists():
        return venv
    if log:
        print(f"building peer venv {venv} (once) ...", file=sys.stderr, flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    constraint_file = venv / "constraints.txt"
    constraint_file.write_text("\n".join(pins) + "\n")
    subprocess.run(
        [
            str(_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(constraint_file),
            *requirements,
        ],
        check=True,
    )
    (venv / ".complete").write_text("\n".join(requirements) + "\n")
    return venv


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEERS):
        print(ensure_venv(peer))
