"""5xx answers are errors: one Sentry event and one count, grouped by their cause, never expected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_gatewayz._errors.capture import ErrorCapturer, InApp
from otel_gatewayz._errors.grouping import ErrorGrouper
from otel_gatewayz._errors.handlers import install_handlers
from otel_gatewayz._errors.recorder import ErrorRecorder
from otel_gatewayz._metrics.instruments import Instruments
from otel_gatewayz._sentry.errors import ErrorEventWorker


class APIError(Exception):
    """Shaped like openai.APIError."""

    status_code = 503


class ValidationError(Exception):
    pass


class Maintenance(Exception):
    pass


class Sent:
    """What the recorder's real capturer sends, through the event worker, built as Sentry gets it (before the hooks)."""

    def __init__(self, instruments: Instruments) -> None:
        self._events: list[dict[str, Any]] = []
        self.worker = ErrorEventWorker(instruments.drops, None, send=self._send, record_lost=lambda count: None)

    def _send(self, event: dict[str, Any], hint: dict[str, Any]) -> str:
        self._events.append(event)
        return str(event["event_id"])

    def __call__(self) -> list[dict[str, Any]]:
        assert self.worker.flush(5.0)
        return list(self._events)


def _raised(event: dict[str, Any]) -> dict[str, Any]:
    """The exception the event is about (the outermost of its chain: Sentry lists the innermost first)."""
    value: dict[str, Any] = event["exception"]["values"][-1]
    return value


def _app(failed: tuple[tuple[int, int], ...]) -> tuple[FastAPI, InMemoryMetricReader, Sent]:
    reader = InMemoryMetricReader()
    instruments = Instruments(MeterProvider(metric_readers=[reader]).get_meter("t"))
    sent = Sent(instruments)
    recorder = ErrorRecorder(
        ErrorGrouper(),
        instruments,
        capturer=ErrorCapturer(sent.worker, None, InApp(), with_locals=False),
        capture_expected_errors=False,  # production
        failed_status_codes=failed,
    )
    app = FastAPI()

    @app.get("/mapped")
    async def mapped() -> None:
        try:
            raise APIError("Error code: 503 - overloaded")
        except APIError as exc:
            raise HTTPException(502, "provider unavailable") from exc

    @app.get("/status/{code}")
    async def status(code: int) -> None:
        raise HTTPException(code, f"no: {code}")

    @app.get("/validation")
    async def validation() -> None:
        raise ValidationError("Invalid model parameter 'gpt-999'")

    @app.get("/maintenance")
    async def maintenance() -> None:
        raise Maintenance("back soon")

    @app.get("/recorded/{kind}")
    async def recorded(kind: str) -> None:
        error = APIError("Error code: 503 - overloaded") if kind == "provider" else ValidationError("bad model")
        try:
            raise error
        except Exception as exc:
            recorder.record(exc)  # as capture_errors does; a validation error is withheld in production
            raise HTTPException(503, "unavailable") from exc

    @app.exception_handler(Maintenance)
    async def on_maintenance(request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "maintenance"}, status_code=503)

    install_handlers(app, recorder, lambda: None)
    return app, reader, sent


def _errors_counted(reader: InMemoryMetricReader) -> dict[str, int]:
    counted: dict[str, int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "gatewayz.errors":
                    for point in metric.data.data_points:
                        key = f"{point.attributes['error.type']}/{point.attributes['error.category']}"
                        counted[key] = counted.get(key, 0) + int(point.value)
    return counted


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.get(path)


async def test_a_mapped_http_exception_is_one_event_grouped_by_its_cause():
    app, reader, sent = _app(((500, 599),))
    response = await _get(app, "/mapped")
    assert response.status_code == 502
    [event] = sent()
    assert event["fingerprint"] == ["APIError", "provider_error"]
    assert event["tags"]["error_type"] == "provider_error"
    assert event["tags"]["provider_status_code"] == "503"
    assert _errors_counted(reader) == {"APIError/provider_error": 1}


async def test_any_handler_answering_5xx_is_an_error_and_4xx_are_not():
    app, _, sent = _app(((500, 599),))
    assert (await _get(app, "/maintenance")).status_code == 503
    assert (await _get(app, "/status/503")).status_code == 503
    assert (await _get(app, "/status/409")).status_code == 409
    assert [_raised(event)["type"] for event in sent()] == ["Maintenance", "HTTPException"]


async def test_an_error_answering_500_is_never_expected_in_production():
    app, _, sent = _app(((500, 599),))
    assert (await _get(app, "/validation")).status_code == 500
    [event] = sent()
    assert event["fingerprint"] == ["ValidationError", "validation_error"]


@pytest.mark.parametrize(
    ("kind", "counted"), [("provider", "APIError/provider_error"), ("validation", "ValidationError/validation_error")]
)
async def test_a_5xx_raised_from_a_recorded_error_is_that_error_once(kind, counted):
    app, reader, sent = _app(((500, 599),))
    assert (await _get(app, f"/recorded/{kind}")).status_code == 503
    [event] = sent()  # sent when recorded (provider), or when the 503 made the withheld one an error
    assert _raised(event)["type"] == counted.split("/")[0]
    assert _errors_counted(reader) == {counted: 1}


async def test_the_failed_status_codes_are_a_setting():
    app, _, sent = _app(((500, 501),))
    assert (await _get(app, "/status/502")).status_code == 502
    assert (await _get(app, "/status/501")).status_code == 501
    assert [_raised(event)["value"] for event in sent()] == ["no: 501"]  # the HTTPException(501)
