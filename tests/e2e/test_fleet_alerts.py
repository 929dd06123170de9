"""The spec's fleet alerts through the real pipeline: the instrumented gateway exports OTLP to
the collector built from collector/builder-config.yaml, a real Prometheus scrapes the
collector's prometheus exporter with collector/prometheus/alerts.yml loaded, and each alert
stays silent one error short of its threshold and fires on the next one (the spend alert: one
priced call short of its budget, then one more). The recording rule
behind GatewayzNewReleaseErrors is non-empty, both through the collector (where the release
gauge is ``gatewayz_release_info_ratio``) and on a directly scraped /metrics endpoint (where
it is ``gatewayz_release_info``).

The rules under test are alerts.yml itself, with one change: the release group evaluates
every second at 1s resolution over 10 minutes (instead of every minute at 5m resolution over
7 days), so a release is "first seen" within seconds instead of at the next 5-minute step.
The alert expressions, windows and thresholds are the shipped ones (no alert has a ``for:``;
every series here is born inside its window, so it counts from 0).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.helpers import RAW_CHAT_PATH, SHA, auth, chat
from tests.servers.collector import CollectorServer
from tests.servers.gateway import Gateway, GatewayFactory
from tests.servers.prometheus import PrometheusFactory, PrometheusServer

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS = REPO_ROOT / "collector" / "prometheus" / "alerts.yml"
RECORD = "gatewayz:release_first_seen:timestamp_seconds"
# A loaded 2-core machine: export every second, scrape and evaluate every second, wait long.
TIMEOUT = 90.0


def _fast_rules(path: Path) -> Path:
    rules = yaml.safe_load(ALERTS.read_text())
    [releases] = [group for group in rules["groups"] if group["name"] == "gatewayz-releases"]
    assert releases["interval"] == "1m"
    releases["interval"] = "1s"
    [record] = [rule for rule in releases["rules"] if rule.get("record") == RECORD]
    assert "[7d:5m]" in record["expr"]
    record["expr"] = record["expr"].replace("[7d:5m]", "[10m:1s]")
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fast_rules(tmp_path_factory.mktemp("rules") / "alerts.yml")


@pytest.fixture(scope="module")
def collector(collector_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorServer]:
    with CollectorServer(collector_bin, tmp_path_factory.mktemp("collector")) as server:
        yield server


@pytest.fixture(scope="module")
def fleet_prometheus(
    collector: CollectorServer, rules: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """One Prometheus scraping the collector for the whole module (each test its own service)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with PrometheusServer([collector.prometheus_target], workdir, rule_files=[rules]) as server:
        yield server


def _gateway(gateway_factory: GatewayFactory, collector: CollectorServer, service: str, **env: str) -> Gateway:
    return gateway_factory(
        env={
            "OTEL_SERVICE_NAME": service,
            "APP_ENV": "production",
            "RELEASE_SHA": SHA,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            **env,
        }
    )


def _error(gateway: Gateway, kind: str, message: str | None = None) -> None:
    params = {"message": message} if message else None
    response = httpx.get(f"{gateway.base_url}/v1/errors/{kind}", headers=auth(), params=params, timeout=30)
    assert response.status_code == 500, response.text


def _alert_rule(prometheus: PrometheusServer, name: str) -> dict[str, Any]:
    for group in prometheus.api("rules")["groups"]:
        for rule in group["rules"]:
            if rule["name"] == name:
                return dict(rule)
    raise AssertionError(f"no rule {name} loaded: {prometheus.api('rules')}")


def _alerts_for(prometheus: PrometheusServer, name: str, service: str) -> list[dict[str, Any]]:
    return [a for a in _alert_rule(prometheus, name)["alerts"] if a["labels"].get("service_name") == service]


def _unix(rfc3339: str) -> float:
    """Prometheus's RFC 3339 times (nanosecond fractions, ``Z``) as Unix seconds; 0 if unset."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", rfc3339)
    if match is None:
        return 0.0
    whole = datetime.fromisoformat(match.group(1)).replace(tzinfo=timezone.utc).timestamp()
    return whole + float(f"0.{match.group(2) or 0}")


def _evaluated_after(prometheus: PrometheusServer, name: str, moment: float) -> dict[str, Any]:
    """The rule as of its first evaluation that started after ``moment`` (a Unix time)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        rule = _alert_rule(prometheus, name)
        if _unix(rule.get("lastEvaluation", "")) > moment:
            return rule
        assert time.monotonic() < deadline, f"{name} was not evaluated after {moment}: {rule}"
        time.sleep(0.2)


def _wait_value(prometheus: PrometheusServer, expr: str, value: float) -> float:
    """Poll until ``expr`` is exactly ``value`` in Prometheus; return the Unix time it was seen."""
    prometheus.wait_for_query(expr, lambda r: bool(r) and float(r[0]["value"][1]) == value, timeout=TIMEOUT)
    return time.time()


def _silent_at(prometheus: PrometheusServer, alert: str, service: str, counted: str, value: float) -> None:
    """Once ``counted`` is ``value``, ``alert`` is evaluated and stays silent for ``service``."""
    seen = _wait_value(prometheus, counted, value)
    rule = _evaluated_after(prometheus, alert, seen)
    assert _alerts_for(prometheus, alert, service) == [], f"{alert} fired at {value}: {rule}"


def _firing_at(prometheus: PrometheusServer, alert: str, service: str, counted: str, value: float) -> dict[str, Any]:
    """Once ``counted`` is ``value``, ``alert`` fires for ``service``: the firing alert."""
    _wait_value(prometheus, counted, value)
    deadline = time.monotonic() + TIMEOUT
    while not (alerts := _alerts_for(prometheus, alert, service)) or alerts[0]["state"] != "firing":
        assert time.monotonic() < deadline, f"{alert} did not fire: {_alert_rule(prometheus, alert)}"
        time.sleep(0.2)
    [firing] = alerts
    return firing


def _near_miss_then_fire(
    prometheus: PrometheusServer,
    alert: str,
    service: str,
    counted: str,
    threshold: int,
    provoke: Callable[[int], None],
) -> dict[str, Any]:
    """``threshold`` errors: evaluated and silent; one more: firing. Returns the firing alert."""
    for i in range(threshold):
        provoke(i)
    _silent_at(prometheus, alert, service, counted, threshold)
    provoke(threshold)
    firing = _firing_at(prometheus, alert, service, counted, threshold + 1)
    assert firing["labels"] == {
        "alertname": alert,
        "service_name": service,
        "deployment_environment_name": "production",
        "service_version": SHA,
        "severity": firing["labels"]["severity"],
    }
    assert float(firing["value"]) == threshold + 1
    assert f"{service} (production" in firing["annotations"]["summary"]
    return firing


def test_high_impact_errors_fire_on_the_eleventh(gateway_factory, collector, fleet_prometheus):
    service = "alerts-high-impact"
    gateway = _gateway(gateway_factory, collector, service)

    def provoke(_: int) -> None:
        # The plain-httpx relay: one unhandled 500 each, no SDK retries; /chat/completions: high impact.
        assert chat(gateway.base_url, model="error-500", path=RAW_CHAT_PATH).status_code == 500

    firing = _near_miss_then_fire(
        fleet_prometheus,
        "GatewayzHighImpactErrors",
        service,
        f'sum(gatewayz_errors_total{{service_name="{service}",user_impact="high"}})',
        10,
        provoke,
    )
    assert firing["labels"]["severity"] == "critical"
    assert "11 high-impact errors in 5 minutes" in firing["annotations"]["summary"]


def test_provider_errors_fire_on_the_fifty_first(gateway_factory, collector, fleet_prometheus):
    service = "alerts-provider"
    gateway = _gateway(gateway_factory, collector, service)

    firing = _near_miss_then_fire(
        fleet_prometheus,
        "GatewayzProviderErrors",
        service,
        f'sum(gatewayz_errors_total{{service_name="{service}",error_category="provider_error"}})',
        50,
        lambda _: _error(gateway, "provider"),
    )
    assert firing["labels"]["severity"] == "critical"
    assert "51 provider errors in 10 minutes" in firing["annotations"]["summary"]


def test_new_release_errors_fire_on_the_sixth_new_group(gateway_factory, collector, fleet_prometheus):
    service = "alerts-new-release"
    gateway = _gateway(gateway_factory, collector, service)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]

    # Through the collector the release gauge is gatewayz_release_info_ratio, and the recording
    # rule (which once read only gatewayz_release_info) sees it.
    labels = f'service_name="{service}",deployment_environment_name="production",service_version="{SHA}"'
    fleet_prometheus.wait_for_query(f"gatewayz_release_info_ratio{{{labels}}}", timeout=TIMEOUT)
    assert fleet_prometheus.query(f"gatewayz_release_info{{{labels}}}") == []
    [recorded] = fleet_prometheus.wait_for_query(f"{RECORD}{{{labels}}}", timeout=TIMEOUT)
    assert abs(float(recorded["value"][1]) - time.time()) < 600  # a timestamp: first seen just now

    firing = _near_miss_then_fire(
        fleet_prometheus,
        "GatewayzNewReleaseErrors",
        service,
        f'sum(gatewayz_error_groups_total{{service_name="{service}"}})',
        5,
        # Each message is its own fingerprint, so its own new error group.
        lambda i: _error(gateway, "unique", message=f"{words[i]} broke"),
    )
    assert firing["labels"]["severity"] == "warning"
    assert f"6 new error groups in the last hour of the latest release {SHA}" in firing["annotations"]["summary"]


def test_the_recording_rule_reads_a_directly_scraped_endpoint_too(
    gateway_factory: GatewayFactory, prometheus_factory: PrometheusFactory, rules: Path
) -> None:
    gateway = gateway_factory(env={"OTEL_SERVICE_NAME": "alerts-direct", "APP_ENV": "staging", "RELEASE_SHA": SHA})
    prometheus = prometheus_factory([gateway.metrics_target], rule_files=[rules])

    labels = f'service_name="alerts-direct",deployment_environment_name="staging",service_version="{SHA}"'
    prometheus.wait_for_query(f"gatewayz_release_info{{{labels}}}", timeout=TIMEOUT)
    assert prometheus.query(f"gatewayz_release_info_ratio{{{labels}}}") == []
    [recorded] = prometheus.wait_for_query(f"{RECORD}{{{labels}}}", timeout=TIMEOUT)
    assert abs(float(recorded["value"][1]) - time.time()) < 600


def test_spend_rate_fires_past_the_budget(gateway_factory, collector, fleet_prometheus, tmp_path):
    """$100 in the hour: evaluated and silent; one more call: firing (issue 24's spend alert)."""
    service = "alerts-spend"
    prices = tmp_path / "prices.json"
    # A negotiated price that makes each stub answer (5 completion tokens) cost $20 exactly.
    prices.write_text(json.dumps({"openai": {"budget-test": {"input_mtok": 0, "output_mtok": 4_000_000}}}))
    gateway = _gateway(gateway_factory, collector, service, GATEWAYZ_PRICES_FILE=str(prices))

    def call() -> None:
        response = chat(gateway.base_url, model="budget-test", provider="openai", path=RAW_CHAT_PATH)
        assert response.status_code == 200, response.text

    alert = "GatewayzSpendRate"
    spent = f'sum(gatewayz_gen_ai_cost_usd_total{{service_name="{service}"}})'
    for _ in range(5):
        call()
    _silent_at(fleet_prometheus, alert, service, spent, 100.0)
    call()
    firing = _firing_at(fleet_prometheus, alert, service, spent, 120.0)
    assert firing["labels"] == {
        "alertname": alert,
        "service_name": service,
        "deployment_environment_name": "production",
        "severity": "warning",
    }
    assert float(firing["value"]) == 120.0
    assert (
        firing["annotations"]["summary"] == f"{service} (production): $120.00 spent on LLM providers in the last hour"
    )
