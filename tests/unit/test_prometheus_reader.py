"""The Prometheus reader: pure when our setup builds it, serving at once when something else does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from opentelemetry.sdk.metrics.export import MetricReader
from prometheus_client import REGISTRY

from otel_gatewayz._config.settings import load_settings
from otel_gatewayz._metrics.prometheus import GatewayzPrometheusReader, PrometheusOptions
from tests.servers.ports import free_port


def test_built_with_our_options_it_registers_nothing_until_served():
    collectors = set(REGISTRY._collector_to_names)  # prometheus_client's own registry: nothing added
    built: list[MetricReader] = []
    reader = GatewayzPrometheusReader(PrometheusOptions.from_settings(load_settings({})), on_built=built.append)
    assert built == [reader]
    assert set(REGISTRY._collector_to_names) == collectors
    reader.shutdown()  # never served: nothing to stop


def test_built_by_another_configurator_it_serves_metrics_at_once(tmp_path):
    """No install step runs for a reader the SDK builds from OTEL_METRICS_EXPORTER alone (OTEL_CONFIG_FILE...)."""
    port = free_port()
    script = textwrap.dedent(
        """
        import urllib.request
        from opentelemetry.sdk.metrics import MeterProvider
        from otel_gatewayz._metrics.prometheus import GatewayzPrometheusReader

        provider = MeterProvider(metric_readers=[GatewayzPrometheusReader()])
        provider.get_meter("t").create_counter("made_here").add(3)
        with urllib.request.urlopen("http://127.0.0.1:PORT/metrics", timeout=10) as response:
            print(response.read().decode())
        provider.shutdown()
        """
    ).replace("PORT", str(port))
    env = {"OTEL_EXPORTER_PROMETHEUS_PORT": str(port), "GATEWAYZ_METRICS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("made_here_total")]
    assert line.endswith(" 3.0"), line
