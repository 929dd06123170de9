"""Why exports failed, read from exporter log lines; and span drops counted by reason."""

from __future__ import annotations

import logging

import pytest

from otel_gatewayz._export.reasons import reason_of


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("opentelemetry.exporter", logging.WARNING, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([record("Failed to export span batch code: %s, reason: %s", 503, "Service Unavailable")], "http_503"),
        ([record("Transient error %s encountered while exporting span batch", "Internal Server Error")], "http_500"),
        ([record("Failed to export batch: %s", ConnectionRefusedError("refused"))], "unreachable"),
        ([record("Failed to export batch: %s", TimeoutError("read timed out"))], "timeout"),
        ([record("Export of batch failed due to timeout")], "timeout"),
        ([record("something unexpected")], "export_failed"),
        ([], "export_failed"),
    ],
)
def test_reason_of(records, reason):
    assert reason_of(records)[0] == reason


def test_reason_detail_is_the_first_line_bounded():
    detail = reason_of([record("x" * 500)])[1]
    assert detail == "x" * 200


class _Counter:
    def __init__(self) -> None:
        self.added: list[tuple[int, dict[str, str]]] = []

    def add(self, amount: int, attributes: dict[str, str]) -> None:
        self.added.append((amount, attributes))


def test_a_lost_metric_export_is_counted_once_and_its_lines_held_back(caplog):
    """The real OTLP metric exporter against a refused port: one counted drop, no upstream line."""
    import socket

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_gatewayz._export.failures import count_export_failures
    from otel_gatewayz._metrics.drops import DropCounter

    counter = _Counter()
    count_export_failures(DropCounter(counter))  # type: ignore[arg-type]
    reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[reader]).get_meter("t").create_counter("c").add(1)
    data = reader.get_metrics_data()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{held.getsockname()[1]}/v1/metrics", timeout=2)
        with caplog.at_level(logging.WARNING):
            exporter.export(data)
        exporter.shutdown()
    assert counter.added == [(1, {"signal": "metrics", "reason": "unreachable"})]
    upstream = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert not upstream, [r.getMessage() for r in upstream]
