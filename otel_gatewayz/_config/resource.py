"""The resource every signal carries: service, version (the git SHA), environment, instance."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.sdk.resources import Resource

from .._safety.log import logger
from .settings import Settings, resource_attributes_of

DISTRO_NAME = "otel-gatewayz"


def distro_version() -> str:
    try:
        return version(DISTRO_NAME)
    except PackageNotFoundError:
        return "0.0.0"


def resource_attributes(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """Attributes on top of ``OTEL_RESOURCE_ATTRIBUTES``; keys the user set there keep the user's value.

    Service name, version and environment already honour it (settings precedence); a user's own
    ``service.instance.id`` is kept as given (and not renewed after a fork).
    """
    if settings.release_sha == "unknown":
        logger.warning(
            "otel_gatewayz: no release SHA (set RELEASE_SHA, VERCEL_GIT_COMMIT_SHA or RAILWAY_GIT_COMMIT_SHA); "
            "service.version is 'unknown'"
        )
    ours = {
        "service.name": settings.service_name,
        "service.version": settings.release_sha,
        "deployment.environment.name": settings.environment,
        "service.instance.id": str(uuid.uuid4()),
        "telemetry.distro.name": DISTRO_NAME,
        "telemetry.distro.version": distro_version(),
    }
    users = resource_attributes_of(env)
    return {key: users.get(key, value) for key, value in ours.items()}


def renew_instance_id_after_fork(resource: Resource, env: Mapping[str, str]) -> None:
    """Give a forked worker (gunicorn) its own ``service.instance.id``.

    Providers, tracers and exporters all hold the one Resource object built before the fork,
    and Resource is immutable by API; so the child rewrites the value in place, through the
    SDK's ``BoundedAttributes._dict`` (guarded by a test that fails if it moves).
    """

    if "service.instance.id" in resource_attributes_of(env):
        return  # the user's own id, kept as given

    def renew() -> None:
        attributes = getattr(resource.attributes, "_dict", None)
        if isinstance(attributes, dict) and "service.instance.id" in attributes:
            attributes["service.instance.id"] = str(uuid.uuid4())

    os.register_at_fork(after_in_child=renew)
