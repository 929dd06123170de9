"""scripts/newest_upstreams.py: our caps go, our floors stay, beta floors take betas, failures are read back."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import newest_upstreams as nu  # scripts/ is not a package


def test_caps_go_and_floors_stay() -> None:
    assert [nu.uncapped(c) for c in ("<2", "<=3", ">=1.45", "~=1.4", "==1.44.*", "==1.44", "!=2.1")] == [
        "",
        "",
        ">=1.45",
        ">=1.4",
        ">=1.44",
        "",
        "!=2.1",
    ]


def test_every_declared_dependency_is_found_with_where_it_is_declared() -> None:
    deps = nu.declared_dependencies()
    assert "otel-gatewayz" not in deps  # the test extra names the example extra through us
    sentry = deps["sentry-sdk"]
    assert sentry.sources == ["runtime"] and "<" in sentry.declared and "<" not in sentry.floor
    assert deps["opentelemetry-instrumentation"].takes_prereleases  # 0.67b0 is the newest release
    assert not sentry.takes_prereleases
    assert "stack" in deps["openai"].sources and "[example]" in deps["openai"].sources
    assert nu.in_range("4.0.0", sentry.declared) is False and nu.in_range("2.76.0", sentry.declared) is True


def test_failures_are_read_from_pytest_s_junit_report(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase classname="tests.unit.test_a" name="test_ok"/>'
        '<testcase classname="" name="tests.unit.test_b"><error message="collection failure">'
        "ImportError while importing test module\nTraceback:\nE   ModuleNotFoundError: No module named 'x'"
        "</error></testcase>"
        '<testcase classname="tests.unit.test_c" name="test_d"><failure message="AssertionError: 1 != 2">'
        "def test_d():\n&gt;  assert 1 == 2\nE   AssertionError: 1 != 2</failure></testcase>"
        "</testsuite></testsuites>"
    )
    assert nu.failures(junit) == (
        3,
        [
            ("tests.unit.test_b", "ModuleNotFoundError: No module named 'x'"),
            ("tests.unit.test_c::test_d", "AssertionError: 1 != 2"),
        ],
    )
    assert nu.failures(tmp_path / "missing.xml")[1][0][0] == "pytest"


def test_a_gateway_that_died_at_start_is_reported_with_the_last_exception_in_its_log() -> None:
    text = (
        "E   tests.servers.processes.ProcessDied: server died before http://x/health answered\n"
        "E   --- log ---\n"
        '      File "otel_gatewayz/_sentry/transactions.py", line 31, in <module>\n'
        "    ModuleNotFoundError: No module named 'sentry_sdk.tracing'\n"
    )
    assert nu.first_raised(text, "ProcessDied") == (
        "tests.servers.processes.ProcessDied: server died before http://x/health answered\n"
        "      ... ModuleNotFoundError: No module named 'sentry_sdk.tracing'"
    )
    assert nu.first_raised("E   AssertionError: 1 != 2\n", "m") == "AssertionError: 1 != 2"
