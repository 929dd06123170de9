"""Does otel_gatewayz still work with the newest release of everything it depends on? (run by newest-upstreams.sh)

Our upper bounds keep users on versions we tested; this finds out, before a release, which newer
upstream releases break us. It builds a venv with the newest release of every dependency we
declare (runtime, every extra, and the provider-SDK stack in ``tests/stacks/current.txt``) with
our caps ignored, runs the unit tests and the smoke end-to-end test in it, and prints, per
package, what got installed against what we declare, then each failing test with its first error
line (also kept in ``$OGZ_CACHE/newest-upstreams/last-report.txt``). Exit status: 0 when nothing
broke, 1 when a test failed, 2 when the venv could not be built.

The venv is cached under ``$OGZ_CACHE/newest-upstreams/<key>`` (the key covers the declared
requirements, ``BUILD`` and the checkout's path: the project is installed editable) and is
rebuilt on the first run of each UTC day, or with ``--rebuild``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "tests" / "stacks" / "current.txt"
SMOKE = "tests/e2e/test_upstream_smoke.py"
TESTS = ("tests/unit", SMOKE)
BUILD = "1"  # bump when build() changes what the venv holds
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*(;.*)?$")
_PRERELEASE = re.compile(r"\d(a|b|rc)\d")


@dataclass
class Declared:
    """One dependency: every range we declare for it and where."""

    name: str
    specs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def declared(self) -> str:
        return ",".join(dict.fromkeys(s for s in self.specs if s)) or "any"

    @property
    def floor(self) -> str:
        """What we declare without its upper bounds: the requirement the newest venv installs with."""
        clauses = [uncapped(c) for spec in self.specs for c in spec.split(",") if c.strip()]
        return self.name + ",".join(dict.fromkeys(c for c in clauses if c))

    @property
    def within(self) -> str:
        """What we declare, caps kept (``--within``)."""
        return self.name + self.declared if self.declared != "any" else self.name

    @property
    def takes_prereleases(self) -> bool:
        """A beta floor (``>=0.66b0``): the newest beta is the newest release, as pip itself treats it."""
        return any(_PRERELEASE.search(spec) for spec in self.specs)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uncapped(clause: str) -> str:
    """One version clause with its cap removed: ``<2`` goes, ``~=1.4`` and ``==1.4.*`` become ``>=1.4``."""
    clause = clause.strip()
    if clause.startswith(("<", "===")):
        return ""
    if clause.startswith("~="):
        return ">=" + clause[2:].strip()
    if clause.startswith("=="):
        version = clause[2:].strip()
        return ">=" + version[:-2] if version.endswith(".*") else ""
    return clause


def declared_dependencies() -> dict[str, Declared]:
    """Runtime dependencies, every extra (our own extras left out) and the current provider-SDK stack."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    own = normalise(project["name"])
    lines = [(r, "runtime") for r in project["dependencies"]]
    lines += [(r, f"[{extra}]") for extra, reqs in project.get("optional-dependencies", {}).items() for r in reqs]
    lines += [(r, "stack") for r in STACK.read_text().splitlines()]
    found: dict[str, Declared] = {}
    for line, source in lines:
        line = line.split("#", 1)[0].strip()
        match = _REQUIREMENT.match(line)
        if not line or not match or normalise(match.group(1)) == own:
            continue
        dep = found.setdefault(normalise(match.group(1)), Declared(normalise(match.group(1))))
        dep.specs.append(match.group(3).replace(" ", ""))
        if source not in dep.sources:
            dep.sources.append(source)
    return found


def newest_on_index(pip: Path, dep: Declared) -> str | None:
    """The newest version the index offers (betas only where our floor is a beta); None if pip cannot tell."""
    args = [str(pip), "index", "versions", "--disable-pip-version-check", dep.name]
    out = subprocess.run([*args, *(["--pre"] if dep.takes_prereleases else [])], capture_output=True, text=True)
    match = re.match(r"^\S+ \(([^)]+)\)", out.stdout)
    return match.group(1) if match else None


def run(args: list[str], log: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a build step, its output appended to ``log``."""
    out = subprocess.run(args, capture_output=True, text=True)
    with log.open("a") as f:
        f.write(f"$ {' '.join(args)}\n{out.stdout}{out.stderr}\n")
    if check and out.returncode != 0:
        raise subprocess.CalledProcessError(out.returncode, args, out.stdout, out.stderr)
    return out


def first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR") or "Error" in line or "error" in line]
    return (errors or lines or ["(no output)"])[0][:200]


def build(
    venv: Path, deps: dict[str, Declared], log: Path, within: frozenset[str] = frozenset()
) -> tuple[dict[str, str | None], list[str]]:
    """The venv with the project (editable, no deps) and every dependency's newest release.

    A package named in ``within`` stays in the range we declare: what breaks once a known
    breakage (say sentry-sdk's next major) is out of the way.

    Returns the newest versions on the index and the findings of the build (a newest set that
    cannot be installed together, a conflict between upstreams).
    """
    shutil.rmtree(venv, ignore_errors=True)
    venv.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    run([str(pip), "install", "-q", "--upgrade", "pip"], log, check=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        newest = dict(zip(deps, pool.map(lambda d: newest_on_index(pip, d), deps.values()), strict=True))
    findings: list[str] = []
    pins = [
        deps[name].within if name in within else f"{name}=={version}" if version else deps[name].floor
        for name, version in newest.items()
    ]
    exact = run([str(pip), "install", "-q", "--disable-pip-version-check", *pins], log)
    if exact.returncode != 0:
        findings.append(f"the newest releases cannot all be installed together: {first_error(exact.stderr)}")
        floors = [dep.within if name in within else dep.floor for name, dep in deps.items()]
        run([str(pip), "install", "-q", "--disable-pip-version-check", *floors], log, check=True)
    # Our own caps are expected to be violated here; a conflict between upstreams is a finding.
    run([str(pip), "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", str(REPO)], log, check=True)
    check = run([str(pip), "check", "--disable-pip-version-check"], log)
    own = normalise("otel-gatewayz")
    findings += [
        f"pip check: {line}"
        for line in check.stdout.splitlines()
        if line and not line.startswith("No broken") and normalise(line.split()[0]) != own
    ]
    (venv / "newest.json").write_text(json.dumps({"newest": newest, "findings": findings}, indent=1))
    return newest, findings


def installed_versions(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {normalise(p["name"]): p["version"] for p in json.loads(out.stdout)}


def in_range(version: str, spec: str) -> bool | None:
    """Whether ``version`` satisfies ``spec``; None when ``packaging`` (in the venv's pip) is unavailable."""
    try:
        from pip._vendor.packaging.specifiers import SpecifierSet
    except ImportError:
        return None
    return SpecifierSet(spec).contains(version, prereleases=True)


_EXCEPTION = re.compile(r"^\s*(E\s+)?([\w.]+(Error|Exception)\b:.*)$")


def first_raised(text: str, message: str) -> str:
    """pytest's first ``E   `` line (the message may only say "collection failure"), and, when the
    report goes on to a server's log (a gateway that died at start), the last exception in it."""
    raised = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    first = (raised or [message])[0][:200]
    last = [m.group(2).strip() for m in map(_EXCEPTION.match, text.splitlines()) if m]
    return first if not last or last[-1][:100] in first else f"{first}\n      ... {last[-1][:200]}"


def failures(junit: Path) -> tuple[int, list[tuple[str, str]]]:
    """Tests run and ``(test id, first error line)`` of each failure or error, from pytest's JUnit XML."""
    if not junit.exists():
        return 0, [("pytest", "wrote no report (it could not start: see the output above)")]
    root = ET.parse(junit).getroot()
    broken, total = [], 0
    for case in root.iter("testcase"):
        total += 1
        for problem in (*case.findall("failure"), *case.findall("error")):
            test = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            broken.append((test, first_raised(problem.text or "", problem.get("message") or "(no message)")))
    return total, broken


def report(
    deps: dict[str, Declared],
    installed: dict[str, str],
    newest: dict[str, str | None],
    findings: list[str],
    total: int,
    broken: list[tuple[str, str]],
    within: frozenset[str] = frozenset(),
) -> list[str]:
    """The printed report: packages against our ranges, build findings, what broke."""
    lines = [f"{'package':<46} {'declared (where)':<34} {'installed':<11} {'newest':<11} note"]
    lines.append("-" * len(lines[0]))
    outside = []
    for name, dep in sorted(deps.items()):
        have = installed.get(name, "-")
        note = ""
        if have == "-":
            note = "NOT INSTALLED"
        else:
            fits = in_range(have, dep.declared if dep.declared != "any" else "")
            if fits is False:
                note = "outside our range"
                outside.append(f"{name} {have} (we declare {dep.declared})")
            if newest.get(name) and newest[name] != have:
                held = "kept within our range (--within)" if name in within else "held back by pip's resolution"
                note = (note + "; " if note else "") + held
        where = f"{dep.declared} ({', '.join(dep.sources)})"
        lines.append(f"{name:<46} {where:<34} {have:<11} {newest.get(name) or '?':<11} {note}")
    lines.append("")
    lines += [f"build: {f}" for f in findings]
    lines.append("Newer than we declare: " + ("; ".join(outside) if outside else "nothing (all within our ranges)"))
    if broken:
        lines.append(f"What broke ({len(broken)} of {total} tests):")
        lines += [f"  {test}\n      {message}" for test, message in broken]
    else:
        lines.append(f"Nothing broke: {total} tests passed (tests/unit and {SMOKE}).")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the venv even if it was built today")
    parser.add_argument(
        "--within",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="keep PACKAGE in the range we declare (repeatable): what else breaks, a known breakage aside",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    if sys.version_info < (3, 11):
        print(f"newest-upstreams: needs Python >= 3.11 (tomllib), this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    deps = declared_dependencies()
    cache = Path(os.environ.get("OGZ_CACHE") or Path.home() / ".cache" / "otel_gatewayz") / "newest-upstreams"
    within = frozenset(normalise(name) for name in args.within)
    unknown = sorted(within - set(deps))
    if unknown:
        parser.error(f"--within {', '.join(unknown)}: not a dependency we declare")
    floors = [deps[name].within if name in within else dep.floor for name, dep in deps.items()]
    key_text = "\n".join([str(REPO), sys.version, BUILD, *floors])
    venv = cache / hashlib.sha256(key_text.encode()).hexdigest()[:16]
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    stamp = venv / ".built"
    log = cache / f"build-{today}.log"
    if args.rebuild or not stamp.exists() or stamp.read_text().strip() != today:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"newest-upstreams: building {venv} (log: {log}) ...", file=sys.stderr, flush=True)
        try:
            newest, findings = build(venv, deps, log, within)
        except subprocess.CalledProcessError as err:
            print(f"newest-upstreams: the venv could not be built ({' '.join(err.cmd[:4])} ...): see {log}")
            return 2
        stamp.write_text(today + "\n")
        for other in cache.glob("*/.built"):  # venvs of past days (other keys, other checkouts) go
            if other.read_text().strip() != today:
                shutil.rmtree(other.parent, ignore_errors=True)
    else:
        saved = json.loads((venv / "newest.json").read_text())
        newest, findings = saved["newest"], saved["findings"]
        print(f"newest-upstreams: reusing today's venv {venv} (--rebuild to rebuild)", file=sys.stderr)
    junit = venv / "junit.xml"
    junit.unlink(missing_ok=True)
    # A test module that cannot even be imported must not stop the others (nor the smoke test).
    pytest = [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=no", "-rN"]
    pytest.append("--continue-on-collection-errors")
    print(f"newest-upstreams: running {' '.join(TESTS)} ...", file=sys.stderr, flush=True)
    subprocess.run([*pytest, f"--junitxml={junit}", *TESTS, *args.pytest_args], cwd=REPO, check=False)
    total, broken = failures(junit)
    kept = f"; kept within our range: {', '.join(sorted(within))}" if within else ""
    lines = [f"otel_gatewayz against the newest upstream releases ({today}{kept}; venv {venv})"]
    lines += report(deps, installed_versions(venv), newest, findings, total, broken, within)
    (cache / "last-report.txt").write_text("\n".join(lines) + "\n")  # for the release's closing note
    print("\n" + "\n".join(lines))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
