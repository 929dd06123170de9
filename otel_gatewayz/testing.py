"""Test your instrumentation in-process: the pytest plugin (entry point ``pytest11``) and what it hands a test.

Installed with the package, so a user's tests get the ``gatewayz`` fixture with no conftest line::

    def test_errors_carry_the_user(gatewayz):
        client = gatewayz.client(app)
        client.get("/boom", headers={"Authorization": "Bearer alice"})
        [event] = gatewayz.events()
        assert event["user"]["id"] == "alice"

Each test gets its own distro (providers, in-memory exporters, a recording Sentry transport),
so tests in one process never see each other's data. Override ``gatewayz_env`` to run on other
settings::

    @pytest.fixture
    def gatewayz_env(gatewayz_env):
        return {**gatewayz_env, "APP_ENV": "production"}
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._testing.fixture import DEFAULT_ENV, Gatewayz, in_process
from ._testing.recording import MetricPoint, RecordingTransport

__all__ = ["DEFAULT_ENV", "Gatewayz", "MetricPoint", "RecordingTransport", "gatewayz", "gatewayz_env", "in_process"]


@pytest.fixture
def gatewayz_env() -> dict[str, str]:
    """The environment the test's distro is assembled from (never ``os.environ``): ``DEFAULT_ENV``."""
    return dict(DEFAULT_ENV)


@pytest.fixture
def gatewayz(gatewayz_env: dict[str, str]) -> Iterator[Gatewayz]:
    """The distro in-process for this test: ``client(app)``, then ``spans()``, ``events()``, ``metrics()``..."""
    with in_process(gatewayz_env) as distro:
        yield distro
