"""What differs between the sentry-sdk majors we support (2.x and 3.x), in one place.

sentry-sdk 3 (2026-11) has no transactions: spans stream as ``span`` v2 envelope items.
``data_collection`` replaces ``send_default_pii`` and ``include_local_variables``, the logging
integration's arguments mean other things, and ``sentry_sdk.tracing`` is gone. Everything else
the package uses is the same public API on both; ``tests/unit/test_internals.py`` guards the
rest on each major the test command runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentry_sdk.consts import VERSION
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import LoggingIntegration

from .._errors.recorder import already_recorded
from .request import PII_HEADERS

MAJOR = int(VERSION.split(".", 1)[0])
STREAMS_SPANS = MAJOR >= 3


class DedupingLoggingIntegration(LoggingIntegration):
    """sentry-sdk's logging integration, events only, skipping records of errors the recorder already has.

    uvicorn logs every unhandled exception ("Exception in ASGI application") after our handler
    answered; the SDK would build that record into a full event (frames, locals, source) only
    for ``before_send`` to drop it. The check runs before any of that work. The handler's name
    differs by major (``_handle_record`` in 2.x, ``_handle_event_record`` in 3.x; a test guards both).
    """

    def __init__(self) -> None:
        # 3.x: ``level`` is Sentry Logs and ``breadcrumb_level`` breadcrumbs; 2.x: ``level`` is
        # breadcrumbs and ``sentry_logs_level`` Sentry Logs. Neither is wanted (breadcrumbs are ours).
        quiet: dict[str, Any] = {"breadcrumb_level": None} if STREAMS_SPANS else {"sentry_logs_level": None}
        super().__init__(level=None, event_level=logging.ERROR, **quiet)

    def _handle_record(self, record: logging.LogRecord) -> None:
        if not _recorded(record):
            getattr(super(), "_handle_record")(record)  # noqa: B009 - 2.x only

    def _handle_event_record(self, record: logging.LogRecord) -> None:
        if not _recorded(record):
            getattr(super(), "_handle_event_record")(record)  # noqa: B009 - 3.x only


def ignore_logger_for_events(name: str) -> None:
    """No Sentry event or breadcrumb from logger ``name``.

    2.x's ``ignore_logger`` did that; 3.x's ``ignore_logger`` only mutes Sentry Logs, and events
    need ``ignore_logger_for_events`` (a test logs on both majors and expects no event).
    """
    mute = getattr(sentry_logging, "ignore_logger_for_events", None) or sentry_logging.ignore_logger
    mute(name)


def _recorded(record: logging.LogRecord) -> bool:
    exc_info = record.exc_info
    return bool(exc_info and exc_info[1] is not None and already_recorded(exc_info[1]))


@dataclass(frozen=True)
class Collection:
    """The data our settings let leave the process, as both majors' options express it."""

    send_default_pii: bool
    include_local_variables: bool
    capture_message_content: bool


# One row per sentry-sdk 3 ``data_collection`` category: (category, our setting, the rule).
# The README's "sentry-sdk 3 data_collection" table is generated from these rows (a test compares).
DATA_COLLECTION: tuple[tuple[str, str, str, Callable[[Collection], Any]], ...] = (
    ("user_info", "SENTRY_SEND_DEFAULT_PII", "the setting", lambda c: c.send_default_pii),
    ("cookies", "(none)", "`off`: never sent", lambda c: {"mode": "off"}),
    (
        "http_headers.request",
        "SENTRY_SEND_DEFAULT_PII",
        "`denylist` of the SDK's sensitive names, plus the end user's address and user-agent headers unless PII is on",
        lambda c: {"request": {"mode": "denylist", **({} if c.send_default_pii else {"terms": sorted(PII_HEADERS)})}},
    ),
    ("url_query_params", "(none)", "`off`: queries are never sent", lambda c: {"mode": "off"}),
    ("http_bodies", "(none)", "`[]`: bodies are never sent", lambda c: []),
    (
        "gen_ai.inputs / gen_ai.outputs",
        "GATEWAYZ_CAPTURE_MESSAGE_CONTENT",
        "the setting",
        lambda c: {"inputs": c.capture_message_content, "outputs": c.capture_message_content},
    ),
    (
        "mcp.inputs / mcp.outputs",
        "GATEWAYZ_CAPTURE_MESSAGE_CONTENT",
        "the setting",
        lambda c: {"inputs": c.capture_message_content, "outputs": c.capture_message_content},
    ),
    ("stack_frame_variables", "GATEWAYZ_INCLUDE_LOCAL_VARIABLES", "the setting", lambda c: c.include_local_variables),
    ("frame_context_lines", "(none)", "5, as 2.x sends source context", lambda c: 5),
)


def _key(category: str) -> str:
    return category.split(".", 1)[0].split(" ", 1)[0]


def data_collection(collection: Collection) -> dict[str, Any]:
    """sentry-sdk 3's ``data_collection`` option for our settings: nothing off today comes on with 3.x."""
    return {_key(category): rule(collection) for category, _, _, rule in DATA_COLLECTION}


def data_collection_table() -> str:
    """The README's mapping table, generated from :data:`DATA_COLLECTION`."""
    rows = ["| `data_collection` category | Our setting | Value |", "| --- | --- | --- |"]
    for category, setting, rule, _ in DATA_COLLECTION:
        name = setting if setting.startswith("(") else f"`{setting}`"
        rows.append(f"| `{category}` | {name} | {rule} |")
    return "\n".join(rows)


def collection_options(collection: Collection) -> dict[str, Any]:
    """The ``sentry_sdk.init`` options that say what data may leave, for the installed major."""
    if STREAMS_SPANS:
        return {"data_collection": data_collection(collection)}
    return {
        "send_default_pii": collection.send_default_pii,
        "include_local_variables": collection.include_local_variables,
    }


# Sentry's span status for an HTTP status code (what sentry-sdk 2's ``get_span_status_from_http_code``
# returns; 3.x has no such helper and only ``ok``/``error`` on span items).
_HTTP_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    413: "failed_precondition",
    429: "resource_exhausted",
    501: "unimplemented",
    503: "unavailable",
    504: "deadline_exceeded",
}


def span_status_from_http_code(code: int) -> str:
    """A transaction's ``status`` for an HTTP answer, as sentry-sdk 2 names them."""
    if code < 400:
        return "ok"
    if code in _HTTP_STATUS:
        return _HTTP_STATUS[code]
    if code < 500:
        return "invalid_argument"
    return "internal_error" if code < 600 else "unknown_error"
