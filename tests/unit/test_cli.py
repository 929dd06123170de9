"""The command line: ``--version`` names the installed distribution."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

from otel_gatewayz._cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"otel-gatewayz {version('otel-gatewayz')}"


def test_doctor_names_a_spotlight_only_setup(capsys, monkeypatch, tmp_path):
    from otel_gatewayz._cli import doctor

    monkeypatch.chdir(tmp_path)
    code = doctor({"SENTRY_SPOTLIGHT": "true", "RELEASE_SHA": "abc1234"}, sys.stdout)
    out = capsys.readouterr().out
    assert "Sentry sends to Spotlight only" in out and "not configured" not in out
    assert code == 0
