"""A real Prometheus (Debian's /usr/bin/prometheus) scraping test targets every second."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .lifecycle import ProcessServer
from .ports import LOOPBACK, free_port, http_get
from .processes import ManagedProcess, retry_port_clash

__all__ = ["PROMETHEUS_BIN", "PrometheusFactory", "PrometheusServer", "prometheus_config"]

PROMETHEUS_BIN = Path("/usr/bin/prometheus")


def prometheus_config(targets: Sequence[str], rule_files: Sequence[Path] = (), job: str = "gateway") -> dict[str, Any]:
    """Scrape ``targets`` (``host:port``) every second; timeout below the interval."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "800ms", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }


class PrometheusServer(ProcessServer):
    """One Prometheus with its config and TSDB in ``workdir``, on a free loopback port."""

    def __init__(
        self,
        targets: Sequence[str],
        workdir: Path,
        *,
        rule_files: Sequence[Path] = (),
        extra_args: Sequence[str] = (),
        binary: Path = PROMETHEUS_BIN,
        start_timeout: float = 30.0,
    ) -> None:
        self.targets = list(targets)
        self.workdir = workdir
        self.rule_files = list(rule_files)
        self.extra_args = list(extra_args)
        self.binary = binary
        self.start_timeout = start_timeout
        self.port = 0
        self._process: ManagedProcess | None = None

    def start(self) -> PrometheusServer:
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} missing: run scripts/setup-test-servers.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        # JSON is valid YAML, so no YAML library is needed.
        config.write_text(json.dumps(prometheus_config(self.targets, self.rule_files), indent=2))
        self._process = retry_port_clash(lambda: self._launch(config))
        return self

    def _launch(self, config: Path) -> ManagedProcess:
        self.port = free_port()
        argv = [
            str(self.binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            *self.extra_args,
        ]
        process = ManagedProcess(argv, log_path=self.workdir / "prometheus.log", cwd=self.workdir)
        return process.start(ready_url=f"{self.url}/-/ready", ready_timeout=self.start_timeout)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raise on an error status)."""
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        status, body = http_get(url, timeout=10.0)
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise RuntimeError(f"GET {url} -> {status}: {payload}")
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (each item has ``metric`` and ``value``)."""
        result: list[dict[str, Any]] = self.api("query", {"query": expr})["result"]
        return result

    def values(self, expr: str) -> list[float]:
        """The sample values of an instant vector query."""
        return [float(item["value"][1]) for item in self.query(expr)]

    def targets_health(self) -> list[dict[str, Any]]:
        """Active targets with ``health``, ``lastError`` and ``scrapeUrl``."""
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def wait_for_query(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll ``query(expr)`` until ``predicate(result)`` holds; default: non-empty."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                targets = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets_health()]
                raise TimeoutError(
                    f"{expr!r} did not satisfy the predicate within {timeout}s; last result {result}; targets {targets}"
                )
            time.sleep(0.2)


class PrometheusFactory(Protocol):
    """What the ``prometheus_factory`` fixture returns: start a Prometheus, stopped at teardown."""

    def __call__(
        self,
        targets: Sequence[str],
        *,
        rule_files: Sequence[Path] = (),
        extra_args: Sequence[str] = (),
    ) -> PrometheusServer: ...
