"""Run by test_error_context.py: expected errors (validation) that end up answered 5xx anyway."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from otel_gatewayz import capture_errors

app = FastAPI()


class ValidationError(Exception):
    """Grouped as ``validation_error``: expected, so not sent to Sentry in production, if answered 4xx."""


class Order(BaseModel):
    amount: float


@capture_errors(operation="check_order")
async def check(amount: float, where: str) -> None:
    """Records a rejection (as an expected error) and re-raises it."""
    if amount <= 0:
        raise ValidationError(f"Invalid amount for {where}")


@app.exception_handler(RequestValidationError)
async def invalid_body(request: Request, exc: Exception) -> JSONResponse:
    """A gateway that answers a body it cannot read with 500 (instead of FastAPI's 422)."""
    return JSONResponse({"error": "internal"}, status_code=500)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/escaped")
async def escaped(amount: float) -> None:
    await check(amount, "escaped")  # recorded as expected, then escapes: a 500


@app.post("/mapped")
async def mapped(amount: float) -> None:
    try:
        await check(amount, "mapped")
    except ValidationError as exc:  # recorded as expected, then answered 503
        raise HTTPException(503, "unavailable") from exc


@app.post("/rejected")
async def rejected(amount: float) -> None:
    try:
        await check(amount, "rejected")
    except ValidationError as exc:  # answered 400: stays expected
        raise HTTPException(400, "bad amount") from exc


@app.post("/handled")
async def handled(order: Order) -> dict[str, float]:
    return {"amount": order.amount}  # a body that fails validation is answered 500 by the handler above
