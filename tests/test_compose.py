"""docker-compose.yml and what it mounts, checked offline (no Docker engine here): schema,
mounted files, pinned images, loopback ports, secrets from env, and that the pieces point at
each other (collector version, scrape targets, Grafana datasource uids)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE = REPO_ROOT / "docker-compose.yml"
COMPOSE_SENTRY = REPO_ROOT / "docker-compose.sentry.yml"
COMPOSE_TIERS = REPO_ROOT / "docker-compose.tiers.yml"
COMPOSE_FILES = (COMPOSE, COMPOSE_SENTRY, COMPOSE_TIERS)
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "examples" / "gateway" / "Dockerfile"
BUILDER_CONFIG = REPO_ROOT / "collector" / "builder-config.yaml"
COLLECTOR_CONFIG = REPO_ROOT / "collector" / "config.yaml"
FRONT_OVERLAY = REPO_ROOT / "collector" / "config.front.yaml"
BACK_OVERLAY = REPO_ROOT / "collector" / "config.back.yaml"
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib"
PROMETHEUS_CONFIG = REPO_ROOT / "collector" / "prometheus" / "prometheus.yml"
GRAFANA = REPO_ROOT / "collector" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS = GRAFANA / "dashboards"

SECRET_NAME = re.compile(r"(DSN|KEY|TOKEN|PASSWORD|SECRET)$", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?+][^}]*)?\}")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _load(path)["services"]
    return services


def _all_services() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in COMPOSE_FILES:
        for name, service in _services(path).items():
            yield path.name, name, service


def _default(value: str) -> str:
    """``${env:NAME:-default}`` -> ``default`` (the value compose runs the collector with)."""
    match = re.fullmatch(r"\$\{env:\w+:-(.*)\}", value)
    assert match, f"{value} has no default"
    return match.group(1)


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(source, target) of each bind mount, short or long syntax."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                yield source, target
        elif volume.get("type") == "bind":
            yield volume["source"], volume["target"]


def _mount_target(service: dict[str, Any], source: Path) -> str:
    for mount_source, target in _bind_mounts(service):
        if (REPO_ROOT / mount_source).resolve() == source.resolve():
            return target
    raise AssertionError(f"{source} is not mounted")


def test_compose_files_match_the_compose_spec() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    found = str(tool) if tool.exists() else shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema not found: pip install check-jsonschema", pytrace=False)
    for path in COMPOSE_FILES:
        done = subprocess.run(
            [found, "--builtin-schema", "vendor.compose-spec", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_mounted_file_and_build_input_exists() -> None:
    mounts = 0
    for file, name, service in _all_services():
        for source, _ in _bind_mounts(service):
            assert (REPO_ROOT / source).exists(), f"{file}: {name} mounts missing {source}"
            mounts += 1
        build = service.get("build")
        if build:
            context = REPO_ROOT / build["context"]
            assert context.is_dir(), f"{name}: no build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()
    assert mounts >= 6


def test_every_image_is_pinned() -> None:
    images = [(f"{file} {name}", service["image"]) for file, name, service in _all_services() if "image" in service]
    for file, name, service in _all_services():
        assert "image" in service or "build" in service or file != COMPOSE.name, f"{name}: no image, no build"
    images += [
        (DOCKERFILE.name, line.split()[1]) for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")
    ]
    assert len(images) >= 5
    for where, image in images:
        name, _, digest = image.partition("@")
        tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
        assert digest or tag, f"{where}: {image} has no tag"
        assert tag != "latest", f"{where}: {image} is not pinned"
        assert digest or re.search(r"\d+\.\d+\.\d+", tag), f"{where}: {image} is not pinned to a release"


def test_ports_are_bound_to_loopback() -> None:
    for file, name, service in _all_services():
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{file}: {name} publishes {port} beyond loopback"


def test_secrets_come_only_from_the_environment() -> None:
    interpolated: set[str] = set()
    for path in COMPOSE_FILES:
        interpolated |= set(INTERPOLATION.findall(path.read_text()))
    for file, name, service in _all_services():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: use the mapping form for environment"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(str(value)), f"{file}: {name} hard-codes {key}"
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"#?\s*[A-Z][A-Z0-9_]*=", line)
    }
    assert interpolated <= documented, f".env.example misses {sorted(interpolated - documented)}"
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#") and SECRET_NAME.search(key):
            assert not value.strip(), f".env.example ships a value for {key}"


# --- The pieces point at each other -------------------------------------------------------


def test_collector_image_is_the_built_collector_version() -> None:
    image = _services()["collector"]["image"]
    name, _, tag = image.rpartition(":")
    assert name == COLLECTOR_IMAGE
    manifest = _load(BUILDER_CONFIG)
    assert tag == manifest["dist"]["version"]
    versions = {
        m["gomod"].split()[1]
        for kind in ("receivers", "processors", "exporters", "extensions")
        for m in manifest.get(kind) or []
    }
    assert versions == {f"v{tag}"}
    # Every collector of every profile runs that same release.
    collectors = [s["image"] for _, _, s in _all_services() if s.get("image", "").startswith(f"{COLLECTOR_IMAGE}:")]
    assert len(collectors) >= 3 and set(collectors) == {image}


def test_collector_runs_the_repository_config() -> None:
    collector = _services()["collector"]
    target = _mount_target(collector, COLLECTOR_CONFIG)
    assert f"--config={target}" in collector["command"]
    overlay = _services(COMPOSE_SENTRY)["collector"]
    for config in (COLLECTOR_CONFIG, REPO_ROOT / "collector" / "config.sentry.yaml"):
        target = _mount_target({"volumes": collector["volumes"] + overlay["volumes"]}, config)
        assert f"--config={target}" in overlay["command"]
    assert {"SENTRY_OTLP_ENDPOINT", "SENTRY_PUBLIC_KEY"} <= overlay["environment"].keys()


def test_two_tier_profile_runs_a_front_and_backs_with_their_overlays() -> None:
    base, tiers = _services(), _services(COMPOSE_TIERS)
    config = _load(COLLECTOR_CONFIG)
    front_volumes = base["collector"]["volumes"] + tiers["collector"]["volumes"]
    for path in (COLLECTOR_CONFIG, FRONT_OVERLAY):
        assert f"--config={_mount_target({'volumes': front_volumes}, path)}" in tiers["collector"]["command"]
    backs = {name: service for name, service in tiers.items() if name.startswith("collector-back-")}
    assert len(backs) >= 2
    for back in backs.values():
        for path in (COLLECTOR_CONFIG, BACK_OVERLAY):
            assert f"--config={_mount_target(back, path)}" in back["command"]
        # The backs feed config.yaml's trace store.
        store = urlsplit(_default(config["exporters"]["otlp_http/traces"]["endpoint"])).hostname
        assert store in base and store in back["depends_on"]
    # The front routes to exactly the backs, at config.yaml's OTLP/gRPC port, and waits for them.
    grpc_port = _default(config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]).rpartition(":")[2]
    hostnames = yaml.safe_load(tiers["collector"]["environment"]["COLLECTOR_BACK_COLLECTORS"])
    assert sorted(hostnames) == sorted(f"{name}:{grpc_port}" for name in backs)
    assert set(backs) <= set(tiers["collector"]["depends_on"])
    # ...and the overlay's own default names the same backs, so the profile runs unconfigured too.
    static = _load(FRONT_OVERLAY)["exporters"]["load_balancing"]["resolver"]["static"]
    assert sorted(yaml.safe_load(_default(static["hostnames"]))) == sorted(hostnames)
    # The gateway exports every trace and leaves the decision to the backs.
    gateway = tiers["gateway"]["environment"]
    assert float(gateway["SENTRY_TRACES_SAMPLE_RATE"]) == 1.0
    assert gateway["GATEWAYZ_KEEP_TRACES"] == "false"
    assert gateway["GATEWAYZ_SENTRY_TRACES_VIA"] == "none"  # Sentry gets the errors, not every transaction


def test_gateway_exports_to_the_collector_and_calls_the_provider() -> None:
    services = _services()
    environment = services["gateway"]["environment"]
    receivers = _load(COLLECTOR_CONFIG)["receivers"]["otlp"]["protocols"]
    http_port = _default(receivers["http"]["endpoint"]).rpartition(":")[2]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://collector:{http_port}"
    provider = urlsplit(environment["GATEWAY_PROVIDER_URL"])
    assert provider.hostname in services
    assert str(provider.port) in " ".join(services[provider.hostname]["command"])
    assert "collector" in services["gateway"]["depends_on"]


def test_collector_exports_to_services_that_exist() -> None:
    services = _services()
    exporters = _load(COLLECTOR_CONFIG)["exporters"]
    assert urlsplit(_default(exporters["otlp_http/traces"]["endpoint"])).hostname in services


def test_prometheus_scrapes_the_collector_and_loads_the_rules() -> None:
    services = _services()
    prometheus = services["prometheus"]
    config_target = _mount_target(prometheus, PROMETHEUS_CONFIG)
    assert f"--config.file={config_target}" in prometheus["command"]
    config = _load(PROMETHEUS_CONFIG)
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file()
        mounted = _mount_target(prometheus, PROMETHEUS_CONFIG.parent / rule_file)
        assert Path(mounted).parent == Path(config_target).parent, f"{rule_file} is not beside the config"
    targets = {
        target: job for job in config["scrape_configs"] for sc in job["static_configs"] for target in sc["targets"]
    }
    exporter_port = _default(_load(COLLECTOR_CONFIG)["exporters"]["prometheus"]["endpoint"]).rpartition(":")[2]
    job = targets[f"collector:{exporter_port}"]
    assert job.get("honor_labels") is True  # keep the app's job/instance, not the collector's
    for target in targets:
        assert target.partition(":")[0] in services


# --- Grafana ------------------------------------------------------------------------------


def _datasource_uids() -> dict[str, dict[str, Any]]:
    datasources = _load(DATASOURCES)["datasources"]
    uids = [ds["uid"] for ds in datasources]
    assert len(uids) == len(set(uids)), f"duplicate datasource uids {uids}"
    return {ds["uid"]: ds for ds in datasources}


def _referenced_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield value["uid"]
            elif key == "datasourceUid":
                yield value
            else:
                yield from _referenced_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _referenced_uids(item)


def test_grafana_datasources_point_at_compose_services() -> None:
    services = _services()
    datasources = _datasource_uids()
    assert {ds["type"] for ds in datasources.values()} >= {"prometheus", "jaeger"}
    for ds in datasources.values():
        assert urlsplit(ds["url"]).hostname in services, f"{ds['name']}: {ds['url']}"


def test_grafana_provisioning_references_only_datasources_it_defines() -> None:
    uids = _datasource_uids()
    referenced = set(_referenced_uids(_load(DATASOURCES)))
    assert referenced, "no exemplar link from Prometheus to the trace store"
    assert referenced <= uids.keys()
    prometheus = next(ds for ds in uids.values() if ds["type"] == "prometheus")
    [link] = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert uids[link["datasourceUid"]]["type"] == "jaeger"
    assert link["name"] == "trace_id"  # the exemplar label the collector's exporter writes
    dashboards = sorted(DASHBOARDS.glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard_uids = set(_referenced_uids(json.loads(path.read_text())))
        assert dashboard_uids, f"{path.name} names no datasource uid"
        assert dashboard_uids <= uids.keys(), f"{path.name}: unknown uids {dashboard_uids - uids.keys()}"


def test_grafana_mounts_the_provisioning_and_the_dashboards_where_it_looks() -> None:
    grafana = _services()["grafana"]
    assert _mount_target(grafana, GRAFANA / "provisioning") == "/etc/grafana/provisioning"
    dashboards_target = _mount_target(grafana, DASHBOARDS)
    [provider] = _load(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_target
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(dashboards_target)
    assert (DASHBOARDS / Path(home).name).is_file()


def test_dashboard_has_the_panels_issue_5_asks_for() -> None:
    dashboard = json.loads((DASHBOARDS / "gatewayz.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert "rate(http_server_request_duration_seconds_count" in exprs  # request rate
    assert "histogram_quantile(0.95, sum by (le, http_route)" in exprs  # latency by route
    assert "sum by (user_impact) (rate(gatewayz_errors_total" in exprs
    assert "sum by (error_category) (rate(gatewayz_errors_total" in exprs
    assert "by (le, service_version)" in exprs and "sum by (service_version)" in exprs  # releases
    assert "gen_ai_client_operation_duration_seconds_bucket" in exprs
    assert "gen_ai_client_operation_time_to_first_chunk_seconds_bucket" in exprs
    exemplar_panels = [p["title"] for p in dashboard["panels"] if any(t.get("exemplar") for t in p.get("targets", []))]
    assert exemplar_panels, "no panel shows exemplars (the metrics-to-traces link)"
