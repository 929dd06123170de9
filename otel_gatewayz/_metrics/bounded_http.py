"""The old HTTP conventions' server metrics lose the labels a client chooses (its ``Host`` header).

With ``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`` (or the old conventions) the instrumentations
label ``http.server.duration`` and ``http.server.active_requests`` with ``http.host``,
``http.server_name`` and ``net.host.name``, all taken from the request: a client sending random
Host headers creates a series each (memory grows with them). The instrumentations read these
allow-lists at record time, so the client-chosen keys are removed from them in place
(``opentelemetry.instrumentation._semconv``; a test fails if the lists move).
"""

from __future__ import annotations

from .._safety.log import contained

CLIENT_CHOSEN = ("http.host", "http.server_name", "net.host.name")


def drop_client_chosen_labels() -> None:
    """Remove the client-chosen keys from the old conventions' server metric attributes (idempotent)."""
    with contained("bounded old HTTP metric labels"):
        from opentelemetry.instrumentation import _semconv

        for allowed in (_semconv._server_duration_attrs_old, _semconv._server_active_requests_count_attrs_old):
            for key in CLIENT_CHOSEN:
                while key in allowed:
                    allowed.remove(key)
