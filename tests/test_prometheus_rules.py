"""The Prometheus config, the spec's alerts as rules with promtool unit tests, and the
PromQL of the Grafana dashboard, all checked by promtool (Debian's ``prometheus`` package,
installed by scripts/setup-test-servers.sh)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO_ROOT / "collector" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = REPO_ROOT / "collector" / "grafana" / "dashboards" / "gatewayz.json"

SPEC_ALERTS = {"GatewayzHighImpactErrors", "GatewayzNewReleaseErrors", "GatewayzProviderErrors"}
SPEND_ALERT = "GatewayzSpendRate"  # issue 24
RESOURCE_LABELS = {"service_name", "deployment_environment_name", "service_version", "service_instance_id"}
HTTP_SERVER = {"http_route", "http_request_method", "http_response_status_code"}
GEN_AI = {"gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name", "error_type"}
SPEND = {"gen_ai_provider_name", "gen_ai_request_model", "gen_ai_operation_name", "gatewayz_plan"}
# The metric contract: Prometheus names and their own labels (resource labels come on top).
CONTRACT: dict[str, set[str]] = {
    **{f"http_server_request_duration_seconds_{s}": HTTP_SERVER for s in ("bucket", "count", "sum")},
    **{
        f"http_client_request_duration_seconds_{s}": {
            "server_address",
            "http_request_method",
            "http_response_status_code",
        }
        for s in ("bucket", "count", "sum")
    },
    "gatewayz_errors_total": {"error_category", "error_type", "user_impact", "http_route"},
    "gatewayz_error_groups_total": {"error_category", "user_impact"},
    "gatewayz_release_info": set(),
    **{f"gen_ai_client_operation_duration_seconds_{s}": GEN_AI for s in ("bucket", "count", "sum")},
    **{f"gen_ai_client_operation_time_to_first_chunk_seconds_{s}": GEN_AI for s in ("bucket", "count", "sum")},
    "gatewayz_telemetry_dropped_total": {"signal", "reason"},
    "gatewayz_gen_ai_tokens_total": SPEND | {"gen_ai_token_type"},
    "gatewayz_gen_ai_cost_usd_total": SPEND,
    "gatewayz_gen_ai_unpriced_calls_total": SPEND,
}


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail(
            "promtool not found: run scripts/setup-test-servers.sh "
            "(it installs Debian's prometheus package, which ships promtool)",
            pytrace=False,
        )
    return found


def _run(promtool: str, *args: str | Path, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules() -> dict[str, dict[str, Any]]:
    return {rule.get("alert") or rule["record"]: rule for group in _load(ALERTS)["groups"] for rule in group["rules"]}


# --- promtool -----------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config(promtool: str) -> None:
    done = _run(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alerts.yml" in done.stdout  # the rule file was found and checked too


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    done = _run(promtool, "check", "rules", ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    done = _run(promtool, "test", "rules", ALERTS_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("alert", "threshold"),
    [
        ("GatewayzHighImpactErrors", 10),
        ("GatewayzNewReleaseErrors", 5),
        ("GatewayzProviderErrors", 50),
        (SPEND_ALERT, 100),
    ],
)
@pytest.mark.parametrize("shift", [-1, 1])
def test_rule_tests_catch_a_threshold_off_by_one(
    promtool: str, tmp_path: Path, alert: str, threshold: int, shift: int
) -> None:
    """Near misses are tested: moving any threshold by one breaks the unit tests."""
    rules = _load(ALERTS)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                assert f") > {threshold}\n" in rule["expr"]
                rule["expr"] = rule["expr"].replace(f") > {threshold}\n", f") > {threshold + shift}\n")
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    done = _run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"the rule tests still pass with {alert} at > {threshold + shift}"
    assert alert in done.stdout + done.stderr


# --- The rules read the names the pipeline really produces --------------------------------

# Through collector/config.yaml's prometheus exporter (UnderscoreEscapingWithSuffixes) the gauge
# gatewayz.release.info (unit "1") becomes gatewayz_release_info_ratio; on the app's own /metrics
# it stays gatewayz_release_info. tests/e2e/test_fleet_alerts.py checks both against real servers.
# The cost counter (unit "{USD}", an annotation) has one name on both paths.
COLLECTOR_NAMES = {
    "gatewayz_errors_total",
    "gatewayz_error_groups_total",
    "gatewayz_release_info_ratio",
    "gatewayz_gen_ai_cost_usd_total",
}
DIRECT_NAMES = {
    "gatewayz_errors_total",
    "gatewayz_error_groups_total",
    "gatewayz_release_info",
    "gatewayz_gen_ai_cost_usd_total",
}


def _input_names() -> list[str]:
    names = []
    for test in _load(ALERTS_TEST)["tests"]:
        for series in test["input_series"]:
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", series["series"])
            assert match, series
            names.append(match.group(0))
    return names


def test_rule_tests_feed_the_names_the_collector_and_the_app_expose() -> None:
    names = _input_names()
    assert set(names) <= COLLECTOR_NAMES | DIRECT_NAMES
    # Mostly the collector's (the fleet path), and the direct name at least once.
    assert names.count("gatewayz_release_info_ratio") > names.count("gatewayz_release_info") > 0


@pytest.mark.parametrize("name", ["gatewayz_release_info", "gatewayz_release_info_ratio"])
def test_the_release_recording_rule_reads_either_name(promtool: str, tmp_path: Path, name: str) -> None:
    """A rule test fed only ``name`` records a first-seen timestamp for the release."""
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    labels = 'service_name="s",deployment_environment_name="production",service_version="abc"'
    test = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": f'{name}{{{labels},service_instance_id="i"}}', "values": "1x30"}],
                "promql_expr_test": [
                    {
                        "expr": "gatewayz:release_first_seen:timestamp_seconds",
                        "eval_time": "20m",
                        "exp_samples": [
                            {
                                "labels": f"gatewayz:release_first_seen:timestamp_seconds{{{labels}}}",
                                "value": 0,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "release_test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    done = _run(promtool, "test", "rules", "release_test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# --- The rules say what the spec asks -----------------------------------------------------


def test_the_spec_alerts_exist_with_their_filters_and_thresholds() -> None:
    rules = _rules()
    assert rules.keys() >= SPEC_ALERTS
    high = rules["GatewayzHighImpactErrors"]["expr"]
    assert 'user_impact="high"' in high and "offset 5m" in high and ") > 10\n" in high
    provider = rules["GatewayzProviderErrors"]["expr"]
    assert 'error_category="provider_error"' in provider and "offset 10m" in provider and ") > 50\n" in provider
    release = rules["GatewayzNewReleaseErrors"]["expr"]
    assert "gatewayz_error_groups_total" in release and "offset 1h" in release and ") > 5\n" in release
    assert "gatewayz:release_first_seen:timestamp_seconds" in release
    assert "gatewayz_release_info" in rules["gatewayz:release_first_seen:timestamp_seconds"]["expr"]
    spend = rules[SPEND_ALERT]["expr"]
    assert "gatewayz_gen_ai_cost_usd_total" in spend and "[1h] offset 1h" in spend and ") > 100\n" in spend


def test_the_spend_alert_names_service_and_environment_across_releases() -> None:
    """Spend is a budget of the service in an environment: summed over releases and workers."""
    rule = _rules()[SPEND_ALERT]
    assert "sum by (service_name, deployment_environment_name) (\n" in rule["expr"]
    for field in ("summary", "description"):
        for label in ("service_name", "deployment_environment_name"):
            assert f"$labels.{label}" in rule["annotations"][field]


@pytest.mark.parametrize("alert", sorted(SPEC_ALERTS))
def test_alert_annotations_name_service_environment_and_release(alert: str) -> None:
    rule = _rules()[alert]
    assert "by (service_name, deployment_environment_name, service_version)" in rule["expr"]
    for field in ("summary", "description"):
        text = rule["annotations"][field]
        for label in ("service_name", "deployment_environment_name", "service_version"):
            assert f"$labels.{label}" in text, f"{alert} {field} does not name {label}"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for test in _load(ALERTS_TEST)["tests"]:
        for case in test.get("alert_rule_test") or []:
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    assert fired == SPEC_ALERTS | {SPEND_ALERT}
    assert silent == SPEC_ALERTS | {SPEND_ALERT}


# --- The dashboard's PromQL ---------------------------------------------------------------


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*), *\w+\)", variable["definition"])
        assert match, variable["definition"]
        exprs.append(match.group(1))
    return exprs


def _concrete(expr: str) -> str:
    """Grafana's variables replaced by what they expand to."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "6h")
        .replace("$service", ".*")
        .replace("$environment", ".*")
        .replace("$release", ".*")
    )


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 15
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": _concrete(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    done = _run(promtool, "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_queries_use_only_the_metric_contract() -> None:
    for expr in _dashboard_exprs():
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', _concrete(expr))  # no label values
        metrics = {name for name in re.findall(r"[a-z_:][a-z0-9_:]*", code) if name in CONTRACT}
        assert metrics, f"no contract metric in {expr}"
        allowed = RESOURCE_LABELS | {"le"} | set().union(*(CONTRACT[m] for m in metrics))
        selected = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", code))
        grouped = {
            label.strip()
            for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", code)
            for label in clause.split(",")
            if label.strip()
        }
        unknown = (selected | grouped) - allowed
        assert not unknown, f"{expr}: labels {sorted(unknown)} are not on {sorted(metrics)}"
        for word in re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", code):
            if word.endswith(("_total", "_bucket", "_count", "_sum", "_info")) and word not in CONTRACT:
                pytest.fail(f"{expr}: {word} is not a metric of the contract")


def test_dashboard_legends_use_labels_the_query_keeps() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            grouped = {
                label.strip()
                for clause in re.findall(r"\bby\s*\(([^)]*)\)", target["expr"])
                for label in clause.split(",")
            }
            assert legend_labels <= grouped, f"{panel['title']}: legend {legend_labels} vs by {grouped}"
