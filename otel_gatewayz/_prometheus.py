"""The Prometheus endpoint: resource labels on every series, totals across worker processes.

Gateways run several workers (``uvicorn --workers``, gunicorn). Each process writes a snapshot
of its own metrics to a shared directory every second and at exit; whichever process holds
the port serves the sum over all of them (its own series live, the others' from their files).
A worker that dies keeps its last counters in the sum, so totals never go down and a restarted
worker (a new file) is never counted twice; its gauges and ``target_info`` drop out.
If the serving process goes away, another one takes the port over.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, REGISTRY, start_http_server
from prometheus_client.metrics_core import Metric

from ._log import log_once, logger

RESOURCE_LABELS = frozenset({"service.name", "deployment.environment.name", "service.version"})
METRICS_DIR_ENV = "GATEWAYZ_METRICS_DIR"
WRITE_INTERVAL = 1.0
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})


def metrics_dir() -> Path:
    """The directory shared by this server's processes; the first process creates it.

    Set in the environment so workers (spawned or forked) inherit it.
    """
    configured = os.environ.get(METRICS_DIR_ENV)
    if not configured:
        configured = tempfile.mkdtemp(prefix="otel_gatewayz-metrics-")
        os.environ[METRICS_DIR_ENV] = configured
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _to_json(families: Iterable[Metric]) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "documentation": f.documentation,
            "type": f.type,
            "unit": f.unit,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
        for f in families
    ]


def merge(snapshots: Iterable[tuple[bool, list[dict[str, Any]]]]) -> list[Metric]:
    """Sum samples with equal names and labels across processes ``(alive, families)``.

    Dead processes contribute only cumulative series (counters, histograms).
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for alive, families in snapshots:
        for family in families:
            if not alive and family["type"] not in _CUMULATIVE:
                continue
            name = family["name"]
            if name not in merged:
                merged[name] = Metric(name, family["documentation"], family["type"], family["unit"])
                values[name] = {}
            bucket = values[name]
            for sample_name, labels, value in family["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                bucket[key] = bucket.get(key, 0.0) + float(value)
    for name, metric in merged.items():
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class _Labelled:
    """A prometheus_client collector whose samples get the resource labels too."""

    def __init__(self, inner: Any, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            family.samples = [sample._replace(labels={**sample.labels, **self._labels}) for sample in family.samples]
            yield family


class _AllProcesses:
    """The collector the serving process registers: its live series plus the others' files."""

    def __init__(self, reader: GatewayzPrometheusReader) -> None:
        self._reader = reader

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not collect before the provider exists."""
        return []

    def collect(self) -> Iterable[Metric]:
        own = self._reader.snapshot()
        snapshots: list[tuple[bool, list[dict[str, Any]]]] = [(True, own)]
        for path in self._reader.directory.glob("*.json"):
            if path == self._reader.file:
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now; next scrape has it
            snapshots.append((_alive(int(data["pid"])), data["families"]))
        return merge(snapshots)


class GatewayzPrometheusReader(PrometheusMetricReader):
    """``/metrics`` on ``OTEL_EXPORTER_PROMETHEUS_HOST``/``_PORT`` with the totals of all workers."""

    def __init__(self) -> None:
        super().__init__(resource_attribute_filter=lambda key: key in RESOURCE_LABELS)
        REGISTRY.unregister(self._collector)  # served through _AllProcesses instead
        REGISTRY.register(_AllProcesses(self))
        from ._runtime import runtime

        settings = runtime().settings
        _label_default_collectors(
            {
                "service_name": settings.service_name,
                "deployment_environment_name": settings.environment,
                "service_version": settings.release_sha,
            }
        )
        self.directory = metrics_dir()
        self.file = self._new_file()
        self._host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
        self._port = self._parse_port(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        self._serving = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._try_serve()
        self._start_writer()
        atexit.register(self._write)
        os.register_at_fork(after_in_child=self._after_fork)

    def _new_file(self) -> Path:
        return self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"

    @staticmethod
    def _parse_port(raw: str) -> int | None:
        try:
            return int(raw)
        except ValueError:
            logger.error(
                "otel_gatewayz: OTEL_EXPORTER_PROMETHEUS_PORT: %r is not a port number; "
                "the Prometheus endpoint is disabled",
                raw,
            )
            return None

    def snapshot(self) -> list[dict[str, Any]]:
        """This process's series, as plain data."""
        with self._lock:
            return _to_json(self._collector.collect())

    def _write(self) -> None:
        with contextlib.suppress(Exception):
            data = json.dumps({"pid": os.getpid(), "families": self.snapshot()})
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(data)
            os.replace(tmp, self.file)

    def _try_serve(self) -> None:
        if self._serving or self._port is None:
            return
        try:
            start_http_server(port=self._port, addr=self._host)
        except OSError:
            # Expected in a worker: a sibling (or the supervisor) serves the totals.
            log_once(
                "prometheus-port-taken",
                logging.INFO,
                "otel_gatewayz: %s:%s is taken, presumably by a sibling worker serving the totals; "
                "this process writes its metrics to %s and takes over if the port frees",
                self._host,
                self._port,
                self.directory,
            )
            return
        self._serving = True
        logger.info("otel_gatewayz: Prometheus metrics on http://%s:%s/metrics", self._host, self._port)

    def _start_writer(self) -> None:
        def loop() -> None:
            while not self._stop.wait(WRITE_INTERVAL):
                self._write()
                self._try_serve()

        threading.Thread(target=loop, name="otel_gatewayz-metrics", daemon=True).start()

    def _after_fork(self) -> None:
        # The child is a new worker: its own file, its own writer; the parent keeps serving.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._serving = False
        self._collector._target_info = None  # the resource's instance id changes in the child
        self.file = self._new_file()
        self._start_writer()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # Not the parent's: it unregisters the per-process collector, which we never registered.
        self._write()
        self._stop.set()


def _label_default_collectors(labels: dict[str, str]) -> None:
    """Give prometheus_client's process/platform/GC series the same resource labels as ours."""
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            REGISTRY.unregister(collector)
        except KeyError:
            continue
        REGISTRY.register(_Labelled(collector, labels))
