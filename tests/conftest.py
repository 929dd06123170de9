"""Fixtures for tests against real servers on loopback (see tests/servers/).

Every fixture stops what it started at teardown; when a test fails, the logs of the
servers it used are attached to its report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# Import the helpers as ``tests.servers`` whatever pytest's import mode or rootdir is.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.servers.bugsink import BugsinkMissing, BugsinkServer, BugsinkTemplate  # noqa: E402
from tests.servers.collector import CollectorBuildFailed, collector_binary  # noqa: E402
from tests.servers.gateway import Gateway, GatewayFactory  # noqa: E402
from tests.servers.otlp_recorder import OtlpRecorder  # noqa: E402
from tests.servers.ports import RefusedPort  # noqa: E402
from tests.servers.prometheus import PrometheusFactory, PrometheusServer  # noqa: E402
from tests.servers.sentry_recorder import SentryRecorder  # noqa: E402
from tests.servers.sentry_recorder import refused_dsn as _refused_dsn  # noqa: E402

_LOGS = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()
_LOG_TAIL_LINES = 200


# Servers that receive what a gateway sends. Set up first, they are torn down last: a gateway's
# shutdown flush then reaches them, instead of retrying against a closed port for its whole timeout.
_RECEIVERS = ("bugsink", "sentry_recorder", "otlp_recorder", "refused_dsn")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against real servers (slower)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names: list[str] | None = getattr(item, "fixturenames", None)
        if names is None:
            continue
        receivers = [name for name in names if name in _RECEIVERS]
        names[:] = receivers + [name for name in names if name not in _RECEIVERS]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failure, show the tail of each server log the test registered."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for name, logs in item.stash.get(_LOGS, []):
            lines = logs().splitlines()[-_LOG_TAIL_LINES:]
            if lines:
                report.sections.append((f"{name} log (last {len(lines)} lines)", "\n".join(lines)))
    return report


def _register_logs(request: pytest.FixtureRequest, name: str, logs: Callable[[], str]) -> None:
    request.node.stash.setdefault(_LOGS, []).append((name, logs))


@pytest.fixture
def register_logs(request: pytest.FixtureRequest) -> Callable[[str, Callable[[], str]], None]:
    """``register_logs(name, logs)``: the tail of that server's log joins the report if the test fails."""

    def register(name: str, logs: Callable[[], str]) -> None:
        _register_logs(request, name, logs)

    return register


@pytest.fixture(scope="session")
def collector_bin() -> Path:
    """The collector built from collector/builder-config.yaml (``OGZ_COLLECTOR_BIN``, else built or cached)."""
    try:
        return collector_binary()
    except CollectorBuildFailed as err:
        pytest.fail(f"cannot build the collector: {err}", pytrace=False)


@pytest.fixture(scope="session")
def bugsink_template() -> BugsinkTemplate:
    """Migrated Bugsink databases with a project and a full-access token (made once, then cached)."""
    try:
        return BugsinkTemplate.cached()
    except BugsinkMissing as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def bugsink(
    bugsink_template: BugsinkTemplate, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[BugsinkServer]:
    """A running Bugsink with an empty project: send to ``.dsn``, read back with ``.events()``."""
    server = BugsinkServer(bugsink_template, tmp_path / "bugsink")
    _register_logs(request, "bugsink", server.logs)
    with server:
        yield server


@pytest.fixture
def sentry_recorder() -> Iterator[SentryRecorder]:
    """A Sentry ingest endpoint recording envelopes at ``.dsn``; ``.set_mode()`` injects faults."""
    with SentryRecorder() as recorder:
        yield recorder


@pytest.fixture
def otlp_recorder() -> Iterator[OtlpRecorder]:
    """An OTLP/HTTP protobuf receiver at ``.endpoint``; ``.spans()``, ``.metric_names()``."""
    with OtlpRecorder() as recorder:
        yield recorder


@pytest.fixture
def refused_dsn() -> Iterator[str]:
    """A DSN whose port refuses connections (held bound, not listening, for the test)."""
    with RefusedPort() as port:
        yield _refused_dsn(port.port)


@pytest.fixture
def prometheus_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrometheusFactory]:
    """``start(targets, rule_files=(), extra_args=())`` -> a ready Prometheus scraping every 1s."""
    started: list[PrometheusServer] = []

    def start(
        targets: Sequence[str], *, rule_files: Sequence[Path] = (), extra_args: Sequence[str] = ()
    ) -> PrometheusServer:
        server = PrometheusServer(
            targets,
            tmp_path / f"prometheus-{len(started)}",
            rule_files=rule_files,
            extra_args=extra_args,
        )
        started.append(server)
        _register_logs(request, f"prometheus-{len(started) - 1}", server.logs)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def gateway_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GatewayFactory]:
    """``start(env=None, extra_args=(), **Gateway kwargs)`` -> a ready gateway and stub provider."""
    started: list[Gateway] = []

    def start(env: Mapping[str, str] | None = None, extra_args: Sequence[str] = (), **kwargs: Any) -> Gateway:
        index = len(started)
        gateway = Gateway(tmp_path / f"gateway-{index}", env=env, extra_args=extra_args, **kwargs)
        started.append(gateway)
        _register_logs(request, f"gateway-{index}", gateway.logs)
        _register_logs(request, f"provider-{index}", gateway.provider_logs)
        return gateway.start()

    yield start
    for gateway in reversed(started):
        gateway.stop()
