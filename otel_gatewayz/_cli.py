"""``otel-gatewayz``: ``doctor`` checks a deployment's settings end to end; ``release`` prints the id."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from sentry_sdk.utils import Dsn

from ._config.resource import distro_version
from ._config.settings import Settings, load_settings
from ._setup.defaults import environment_defaults
from ._setup.versions import check_installed, sentry_sdk_supported

TEST_MESSAGE = "Test error from Gatewayz API"


def _dsn_host(dsn: str | None) -> str:
    if not dsn:
        return "unset"
    parsed = Dsn(dsn)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port} (project {parsed.project_id})"


def _report(settings: Settings, env: Mapping[str, str], out: TextIO) -> None:
    effective = {**environment_defaults(env), **env}
    rows = [
        ("service", settings.service_name),
        ("release", f"{settings.release} (from {settings.release_source})"),
        ("environment", settings.environment),
        ("sentry", ("enabled" if settings.sentry_enabled else "disabled") + f", DSN {_dsn_host(settings.sentry_dsn)}"),
        ("traces sample rate", str(settings.traces_sample_rate)),
        ("profiles sample rate", str(settings.profiles_sample_rate)),
        ("traces exporter", effective.get("OTEL_TRACES_EXPORTER", "")),
        ("metrics exporter", effective.get("OTEL_METRICS_EXPORTER", "")),
        (
            "prometheus endpoint",
            f"{settings.prometheus_host}:{settings.prometheus_port}" if settings.prometheus_port else "disabled",
        ),
        ("otlp endpoint", effective.get("OTEL_EXPORTER_OTLP_ENDPOINT", "unset")),
        ("trace propagation targets", ", ".join(settings.propagation_targets) or "none"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}", file=out)


def _send_test_message(settings: Settings, out: TextIO) -> bool:
    import sentry_sdk

    from ._sentry.client import init_sentry
    from ._sentry.enrichment import SentryHooks
    from ._sentry.transport import CountingTransport
    from ._setup.runtime import Parts

    parts = Parts.build(settings)
    hooks = SentryHooks(parts.scrubber, parts.grouper, settings.service_name)
    if init_sentry(settings, hooks, CountingTransport.bound(parts.instruments.drops)) is None:
        return False
    event_id = sentry_sdk.capture_message(TEST_MESSAGE, level="info")
    sentry_sdk.flush(timeout=10)
    if CountingTransport.delivered and not CountingTransport.dropped:
        print(f"test message sent: event {event_id}", file=out)
        return True
    print(
        f"ERROR: the test message was not accepted by {_dsn_host(settings.sentry_dsn)} "
        "(check the DSN's key, project and network)",
        file=out,
    )
    return False


def doctor(env: Mapping[str, str], out: TextIO) -> int:
    settings = load_settings(env, cwd=os.getcwd())
    _report(settings, env, out)
    mismatched = check_installed()
    ok = not settings.problems and not mismatched
    for problem in (*settings.problems, *mismatched):
        print(f"ERROR: {problem}", file=out)
    if settings.release_sha == "unknown":
        print("WARNING: no release SHA: set RELEASE_SHA (or VERCEL_GIT_COMMIT_SHA / RAILWAY_GIT_COMMIT_SHA)", file=out)
    if settings.sentry_enabled and not sentry_sdk_supported(mismatched):
        print("Sentry is off with this sentry-sdk: no test message sent", file=out)
    elif settings.sentry_enabled and settings.sentry_dsn:
        ok = _send_test_message(settings, out) and ok
    elif settings.sentry_enabled:
        where = settings.spotlight if isinstance(settings.spotlight, str) else "its default URL"
        print(f"Sentry sends to Spotlight only ({where}); set SENTRY_DSN to send errors to Sentry", file=out)
    elif not settings.problems:
        print("Sentry is not configured: set SENTRY_DSN to send errors", file=out)
    print("OK" if ok else "FAILED", file=out)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-gatewayz", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {distro_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="print the resolved settings and send the spec's test message")
    sub.add_parser("release", help="print the release id (for sentry-cli --release=...)")
    args = parser.parse_args(argv)
    if args.command == "release":
        print(load_settings(os.environ, cwd=os.getcwd()).release)
        return 0
    return doctor(os.environ, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
