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
