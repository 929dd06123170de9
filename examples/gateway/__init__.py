"""A small LLM gateway (`app`) and the stub upstream provider it calls (`provider`).

Run under the distro so nothing in the app configures telemetry itself::

    uvicorn examples.gateway.provider:app --port 8001
    opentelemetry-instrument uvicorn examples.gateway.app:app --port 8000
"""
