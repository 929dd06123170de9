"""Installed dependencies checked against the ranges this distribution declares (its own metadata).

pip keeps the ranges at install time, but not afterwards: ``pip install -U sentry-sdk`` after us,
a ``--no-deps`` install or a lock file can leave a version we never ran against. Then the part
that depends on it is switched off (sentry-sdk: the Sentry side) with one line naming the package,
its version and the supported range, the rest starts as usual, and ``otel-gatewayz doctor`` fails.
The ranges are read from the installed distribution's ``Requires-Dist``, so pyproject.toml stays
their one source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

DISTRIBUTION = "otel-gatewayz"
SENTRY_SDK = "sentry-sdk"
# What stops when a package is outside its range; the others keep running as well as they can.
_CONSEQUENCE = {
    SENTRY_SDK: "Sentry is off (OpenTelemetry traces, metrics and the exception handler keep working)",
}
_DEFAULT_CONSEQUENCE = "continuing; a part that cannot use it says so when it starts"


@dataclass(frozen=True)
class Mismatch:
    """One installed package outside the range we declare for it."""

    package: str
    installed: str
    supported: str

    def __str__(self) -> str:
        consequence = _CONSEQUENCE.get(self.package, _DEFAULT_CONSEQUENCE)
        return (
            f"otel_gatewayz: {self.package} {self.installed} is outside the supported range "
            f"{self.supported}; {consequence}"
        )


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def declared_requirements(distribution: str = DISTRIBUTION) -> list[Requirement]:
    """Our runtime requirements (no extras), as the installed metadata declares them."""
    try:
        raw = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []  # run from a source tree that was never installed: nothing declared to check
    requirements = []
    for line in raw:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            requirements.append(requirement)
    return requirements


def mismatches(
    requirements: Iterable[Requirement], installed: Callable[[str], str | None] | None = None
) -> list[Mismatch]:
    """Each requirement whose installed version is missing, unparsable or outside its specifier."""
    version_of = installed or _installed_version
    found = []
    for requirement in requirements:
        name = _normal(requirement.name)
        version = version_of(name)
        supported = _range(requirement)
        if version is None:
            found.append(Mismatch(name, "(not installed)", supported))
            continue
        try:
            parsed = Version(version)
        except InvalidVersion:
            found.append(Mismatch(name, version, supported))
            continue
        if not requirement.specifier.contains(parsed, prereleases=True):
            found.append(Mismatch(name, version, supported))
    return found


def _range(requirement: Requirement) -> str:
    """The specifier as people write it: lower bound first (``>=2.75,<4``)."""
    parts = sorted(requirement.specifier, key=lambda spec: (not spec.operator.startswith(">"), spec.version))
    return ",".join(str(spec) for spec in parts) or "any"


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_installed() -> list[Mismatch]:
    """Our declared runtime requirements against what is installed now."""
    return mismatches(declared_requirements())


def sentry_sdk_supported(found: Iterable[Mismatch]) -> bool:
    return all(mismatch.package != SENTRY_SDK for mismatch in found)
