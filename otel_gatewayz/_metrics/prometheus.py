"""The Prometheus endpoint: resource labels on every series, totals across worker processes.

Gateways run several workers (``uvicorn --workers``, gunicorn). Each process writes a snapshot
of its own metrics to a shared directory every second and at exit; whichever process holds
the port serves the sum over all of them (its own series live, the others' from their files).
A worker that dies keeps its counters in the sum, so totals never go down and a restarted
worker (a new file) is never counted twice; its gauges and ``target_info`` drop out. What a
worker counted after its last snapshot is in its journal (:mod:`.journal`): a dead worker's
snapshot plus its journal's entries after the snapshot's mark are what it counted, even after
SIGKILL. If the serving process goes away, another one takes the port over.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader, _CustomCollector
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    start_http_server,
)
from prometheus_client.metrics_core import Metric

from .._config.settings import Settings, load_settings
from .._safety.log import log_once, logger
from .journal import Journal, read_deltas
from .merge import alive, merge, to_json
from .port_owner import port_owner
from .replay import replay

RESOURCE_LABELS = frozenset({"service.name", "deployment.environment.name", "service.version"})
METRICS_DIR_ENV = "GATEWAYZ_METRICS_DIR"
_TEMP_PREFIX = "otel_gatewayz-metrics-"
_OWNER_FILE = "owner.pid"
_EMPTY_DIR_GRACE = 600.0  # seconds: a directory a starting server has not written to yet
WRITE_INTERVAL = 1.0


@dataclass(frozen=True)
class PrometheusOptions:
    """What the reader serves and where: built by the setup from the settings."""

    host: str = "localhost"
    port: int | None = 9464
    directory: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    write_interval: float = WRITE_INTERVAL

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusOptions:
        return cls(
            host=settings.prometheus_host,
            port=settings.prometheus_port,
            directory=settings.metrics_dir,
            write_interval=settings.metrics_write_interval,
            labels={
                "service_name": settings.service_name,
                "deployment_environment_name": settings.environment,
                "service_version": settings.release_sha,
            },
        )


def metrics_dir(configured: str | None) -> Path:
    """The directory shared by this server's processes; the first process creates it.

    Set in the environment so workers (spawned or forked) inherit it; a directory that cannot
    be made falls back to a fresh temporary one (multi-worker totals need a shared one).
    """
    if configured:
        try:
            path = Path(configured)
            path.mkdir(parents=True, exist_ok=True)
            return path
        except OSError as exc:
            logger.error(
                "otel_gatewayz: %s: %s cannot be used (%s); using a fresh temporary directory",
                METRICS_DIR_ENV,
                configured,
                type(exc).__name__,
            )
    made = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
    (made / _OWNER_FILE).write_text(str(os.getpid()))
    os.environ[METRICS_DIR_ENV] = str(made)
    atexit.register(_remove_if_owner, made, os.getpid())
    sweep_stale_dirs(made.parent, keep=made)
    return made


def _age(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def _remove_if_owner(path: Path, owner: int) -> None:
    """At the creating process's exit (forked workers inherit the hook, and skip it)."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def sweep_stale_dirs(parent: Path, keep: Path | None = None) -> None:
    """Remove earlier server starts' temporary directories whose processes are all gone.

    A supervisor killed by a signal never runs its exit hook; the next start cleans up after
    it. A directory with a live process, or too new to have recorded one, is kept.
    """
    for candidate in parent.glob(f"{_TEMP_PREFIX}*"):
        if candidate == keep or not candidate.is_dir():
            continue
        with contextlib.suppress(OSError, ValueError):
            owner = candidate / _OWNER_FILE
            pids = [int(owner.read_text())] if owner.exists() else []
            pids += [_pid_of(path) for path in candidate.glob("[0-9]*-*.*")]  # snapshots and journals
            abandoned = not any(alive(pid) for pid in pids) if pids else _age(candidate) > _EMPTY_DIR_GRACE
            if abandoned:
                shutil.rmtree(candidate, ignore_errors=True)


def _pid_of(path: Path) -> int:
    return int(path.name.split("-", 1)[0])


def _resource_label(key: str) -> bool:
    return key in RESOURCE_LABELS


def translate(data: MetricsData) -> list[Metric]:
    """SDK export data as the reader's Prometheus families (the exporter's translation, no ``target_info``)."""
    collector = _CustomCollector(disable_target_info=True, resource_attribute_filter=_resource_label)
    collector.add_metrics_data(data)
    return list(collector.collect())


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
        self._dead: dict[Path, list[tuple[bool, list[dict[str, Any]]]]] = {}

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not collect before the provider exists."""
        return []

    def collect(self) -> Iterable[Metric]:
        own = self._reader.snapshot()
        snapshots: list[tuple[bool, list[dict[str, Any]]]] = [(True, own)]
        for path in self._reader.directory.glob("*.json"):
            if path == self._reader.file:
                continue
            if path in self._dead:
                snapshots += self._dead[path]
                continue
            with contextlib.suppress(ValueError):
                dead = not alive(_pid_of(path))  # before reading: a dead process's files are final
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # being replaced right now; next scrape has it
                if not dead:
                    snapshots.append((True, data["families"]))
                    continue
                self._dead[path] = [(False, data["families"]), *self._journaled(path, data.get("journal"))]
                snapshots += self._dead[path]
        return merge(snapshots)

    @staticmethod
    def _journaled(path: Path, mark: list[int] | None) -> list[tuple[bool, list[dict[str, Any]]]]:
        """What a dead process counted after its snapshot, from its journal."""
        if mark is None:
            return []
        try:
            return [(False, to_json(replay(read_deltas(path, mark), translate)))]
        except Exception:  # noqa: BLE001 - a damaged journal must not take /metrics down
            log_once("journal-replay", logging.ERROR, "otel_gatewayz: unreadable journal %s", path, exc_info=True)
            return []


class GatewayzPrometheusReader(PrometheusMetricReader):
    """``/metrics`` on ``OTEL_EXPORTER_PROMETHEUS_HOST``/``_PORT`` with the totals of all workers.

    The SDK builds it from the ``gatewayz_prometheus`` entry point (``OTEL_METRICS_EXPORTER``)
    with the options our setup passes (``exporter_args_map``); building it then touches nothing:
    :meth:`serve`, which our install step calls once the SDK built it, registers it in
    ``prometheus_client``'s registry, makes the shared directory, binds the port and starts the
    writer and the exit and fork hooks. Built without our options (another configurator, or the
    SDK reading ``OTEL_CONFIG_FILE``), no install step will serve it: it reads the settings itself
    and serves at once. The parent's per-process collector (``_collector``, an
    SDK internal guarded by a test) stays in a registry of its own, and is served through
    :class:`_AllProcesses`.
    """

    directory: Path  # set by :meth:`serve`, with the snapshot ``file``
    file: Path

    def __init__(
        self,
        options: PrometheusOptions | None = None,
        journal: Journal | None = None,
        on_built: Callable[[GatewayzPrometheusReader], None] | None = None,
    ) -> None:
        super().__init__(
            resource_attribute_filter=lambda key: key in RESOURCE_LABELS,
            registry=CollectorRegistry(auto_describe=False),  # not the process's: _AllProcesses serves it
        )
        self._options = options or PrometheusOptions.from_settings(load_settings(os.environ))
        self._host = self._options.host
        self._port = self._options.port
        self._interval = self._options.write_interval
        self._serving = False
        self._started = False
        self._taken_checks = 0
        self._journal = journal
        self._own_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        if on_built is not None:
            on_built(self)  # the install step's handle on the reader the SDK built
        if options is None:  # built without our setup (another configurator, OTEL_CONFIG_FILE): nobody else starts it
            self.serve()

    def serve(self) -> None:
        """Start: the registry, the shared directory, the journal, the port, the writer, exit and fork hooks (once)."""
        if self._started:
            return
        self._started = True
        REGISTRY.register(_AllProcesses(self))
        _label_default_collectors(self._options.labels)
        self.directory = metrics_dir(self._options.directory)
        self.file = self._new_file()
        self._open_journal()
        self._try_serve()
        self._start_writer()
        atexit.register(self._write)
        os.register_at_fork(after_in_child=self._after_fork)

    def _new_file(self) -> Path:
        return self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"

    @property
    def _lock(self) -> threading.RLock:
        """The journal's lock (every journaled measurement takes it), else our own."""
        return self._journal.lock if self._journal is not None else self._own_lock

    def _open_journal(self) -> None:
        """A journal next to the snapshot, and a first snapshot naming its start: durable from the first count."""
        if self._journal is None:
            return
        try:
            self._journal.open(self.file, self._wake.set)
        except OSError as exc:
            logger.error("otel_gatewayz: the metrics journal cannot be written in %s (%s)", self.directory, exc)
            self._journal = None
            return
        self._write(collect=False)

    def snapshot(self) -> list[dict[str, Any]]:
        """This process's series, as plain data."""
        with self._lock:
            return to_json(self._collector.collect())

    def _write(self, collect: bool = True) -> None:
        """Write a snapshot with the journal position it includes; then the journal may move on."""
        with self._write_lock, contextlib.suppress(Exception):
            journal = self._journal
            with self._lock:
                families = list(self._collector.collect()) if collect else []
                mark = journal.mark() if journal is not None else None
            data: dict[str, Any] = {"pid": os.getpid(), "families": to_json(families)}
            if mark is not None:
                data["journal"] = mark
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.file)
            if journal is not None:
                journal.rotate()
                journal.count_missed()

    def _try_serve(self) -> None:
        if self._serving or self._port is None:
            return
        try:
            start_http_server(port=self._port, addr=self._host)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                log_once(
                    "prometheus-serve",
                    logging.ERROR,
                    "otel_gatewayz: OTEL_EXPORTER_PROMETHEUS_HOST/PORT: cannot serve on %s:%s (%s); "
                    "the Prometheus endpoint is disabled in this process",
                    self._host,
                    self._port,
                    exc,
                )
                self._port = None
                return
            self._port_taken()
            return
        self._serving = True
        logger.info("otel_gatewayz: Prometheus metrics on http://%s:%s/metrics", self._host, self._port)

    def _port_taken(self) -> None:
        """The port is in use: expected in a worker (a sibling or the supervisor serves the totals), else said.

        A sibling writes its snapshots in our directory; a server whose processes have none there
        after a write interval (time for a starting sibling's first) has no ``/metrics`` at all.
        """
        if self._siblings():
            log_once(
                "prometheus-port-taken",
                logging.INFO,
                "otel_gatewayz: %s:%s is served by a sibling worker with the totals; this process writes its "
                "metrics to %s and takes over if the port frees",
                self._host,
                self._port,
                self.directory,
            )
            return
        self._taken_checks += 1
        if self._taken_checks < 2:
            return  # the first check at start-up: a sibling may not have written yet
        log_once(
            "prometheus-port-foreign",
            logging.WARNING,
            "otel_gatewayz: OTEL_EXPORTER_PROMETHEUS_PORT: %s:%s is taken by %s, and no worker of this server "
            "serves /metrics; metrics are still counted and exported, and this process serves them if the port frees",
            self._host,
            self._port,
            (port_owner(self._port) if self._port is not None else None) or "another program",
        )

    def _siblings(self) -> bool:
        """Another live process of this server writes its snapshots in our directory."""
        for snapshot in self.directory.glob("*.json"):
            pid = snapshot.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and alive(int(pid)):
                return True
        return False

    def _start_writer(self) -> None:
        def loop() -> None:
            while True:
                self._wake.wait(self._interval)  # or earlier, when the journal fills up
                self._wake.clear()
                if self._stop.is_set():
                    return
                self._write()
                self._try_serve()

        threading.Thread(target=loop, name="otel_gatewayz-metrics", daemon=True).start()

    def _after_fork(self) -> None:
        # The child is a new worker: its own files, its own writer; the parent keeps serving.
        self._own_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._serving = False
        self._collector._target_info = None  # the resource's instance id changes in the child
        self.file = self._new_file()
        self._open_journal()
        self._start_writer()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        # Not the parent's: it unregisters the per-process collector from a registry we never served.
        if not self._started:
            return
        self._write()
        self._stop.set()
        self._wake.set()


def _label_default_collectors(labels: dict[str, str]) -> None:
    """Give prometheus_client's process/platform/GC series the same resource labels as ours."""
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        try:
            REGISTRY.unregister(collector)
        except KeyError:
            continue
        REGISTRY.register(_Labelled(collector, labels))
