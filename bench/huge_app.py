"""A failing route whose frame holds a local of any size and a secret (bench --huge-locals, test_storm)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/errors/huge")
async def huge(rows: int = 10) -> None:
    blob = {"rows": [str(i) * 10 for i in range(rows)], "note": "y" * (rows * 10)}
    api_key = "sk-proj-" + "A1b2C3d4E5f6" * 4
    raise RuntimeError(f"failed over {len(blob['rows'])} rows with key {api_key[:4]}")
