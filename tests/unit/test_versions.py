"""Installed dependencies outside the declared ranges, and an upstream that moved what we import."""

from __future__ import annotations

import logging
import sys

import pytest
from packaging.requirements import Requirement

from otel_gatewayz._setup import assembly
from otel_gatewayz._setup.versions import Mismatch, declared_requirements, mismatches, sentry_sdk_supported


def test_the_ranges_are_read_from_our_own_installed_metadata():
    declared = {requirement.name: requirement for requirement in declared_requirements()}
    assert str(declared["sentry-sdk"].specifier.__class__.__name__) == "SpecifierSet"
    assert declared["sentry-sdk"].specifier.contains("2.76.0") and declared["sentry-sdk"].specifier.contains("3.0.0")
    assert not declared["sentry-sdk"].specifier.contains("4.0.0")
    assert "pytest" not in declared  # extras are not runtime requirements


def test_everything_installed_now_is_in_range():
    assert mismatches(declared_requirements()) == []


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ("3.0.0", []),
        ("2.75.0", []),
        ("4.0.0", [Mismatch("sentry-sdk", "4.0.0", ">=2.75,<4")]),
        ("2.30.0", [Mismatch("sentry-sdk", "2.30.0", ">=2.75,<4")]),
        (None, [Mismatch("sentry-sdk", "(not installed)", ">=2.75,<4")]),
        ("garbage", [Mismatch("sentry-sdk", "garbage", ">=2.75,<4")]),
    ],
)
def test_a_version_outside_the_range_is_one_mismatch(installed, expected):
    found = mismatches([Requirement("sentry_sdk<4,>=2.75")], installed=lambda name: installed)
    assert found == expected
    assert sentry_sdk_supported(found) is (not expected)


def test_a_mismatch_names_package_version_range_and_what_stops():
    line = str(Mismatch("sentry-sdk", "4.0.0", ">=2.75,<4"))
    assert line == (
        "otel_gatewayz: sentry-sdk 4.0.0 is outside the supported range >=2.75,<4; Sentry is off "
        "(OpenTelemetry traces, metrics and the exception handler keep working)"
    )
    assert "continuing" in str(Mismatch("opentelemetry-sdk", "2.0.0", ">=1.45,<2"))


def test_an_upstream_that_moved_an_import_turns_sentry_off_with_one_line(monkeypatch, caplog):
    """sentry-sdk 3.0 removed ``sentry_sdk.tracing``: such a move must cost Sentry, never the distro."""
    for ours in ("otel_gatewayz._setup.sentry_side", "otel_gatewayz._sentry.client"):
        monkeypatch.delitem(sys.modules, ours, raising=False)  # imported afresh, as at start-up
    monkeypatch.setitem(sys.modules, "sentry_sdk.integrations.otlp", None)  # as if a release removed it
    with caplog.at_level(logging.ERROR, logger="otel_gatewayz"):
        assert assembly.sentry_side_module([]) is None
    [record] = [r for r in caplog.records if "Sentry is off" in r.getMessage()]
    assert record.getMessage().startswith("otel_gatewayz: sentry-sdk ")
    assert "ModuleNotFoundError" in record.getMessage() and "sentry_sdk.integrations.otlp" in record.getMessage()


def test_an_out_of_range_sentry_sdk_is_not_imported_at_all(monkeypatch):
    monkeypatch.delitem(sys.modules, "otel_gatewayz._setup.sentry_side", raising=False)
    assert assembly.sentry_side_module([Mismatch("sentry-sdk", "4.0.0", ">=2.75,<4")]) is None
    assert "otel_gatewayz._setup.sentry_side" not in sys.modules


def test_the_readme_shows_the_data_collection_mapping_the_code_applies():
    from pathlib import Path

    from otel_gatewayz._sentry.sdk import Collection, data_collection, data_collection_table

    assert data_collection_table() in (Path(__file__).resolve().parents[2] / "README.md").read_text()
    off = data_collection(
        Collection(send_default_pii=False, include_local_variables=False, capture_message_content=False)
    )
    assert off["user_info"] is False and off["cookies"] == {"mode": "off"} and off["http_bodies"] == []
    assert off["gen_ai"] == {"inputs": False, "outputs": False} and off["stack_frame_variables"] is False
    assert "user-agent" in off["http_headers"]["request"]["terms"]
    on = data_collection(Collection(send_default_pii=True, include_local_variables=True, capture_message_content=True))
    assert on["user_info"] is True and on["gen_ai"] == {"inputs": True, "outputs": True}
    assert "terms" not in on["http_headers"]["request"] and on["stack_frame_variables"] is True
