"""A local trace as Sentry span v2 items, the way sentry-sdk 3 streams spans.

sentry-sdk 3 has no transactions: each finished span is a ``span`` item
(``application/vnd.sentry.items.span.v2+json``: ``{"version": 2, "items": [...]}``, typed
attributes), a trace's spans share one envelope whose ``trace`` header is the DSC, and the
segment (our local root) says ``is_segment``. Here the same clean span copies every other
exporter gets become those items, with the ``sentry.*`` attributes Sentry's product reads
(op, origin, segment id and name, release, environment, SDK, runtime) beside the OTel ones. What
native 3.x adds by default and ours leaves out: ``process.command_args`` (argv) and the raw
request headers; the end user's address and user agent only with ``SENTRY_SEND_DEFAULT_PII``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.utils import format_timestamp

from .._context.baggage import DscSource, FrozenDsc
from .._context.sampling import head_sampled
from .envelopes import RUNTIME, ClientSlot, deliver
from .request import request_from_span
from .transactions import ORIGIN, description, operation, sentry_attributes, span_status

CONTENT_TYPE = "application/vnd.sentry.items.span.v2+json"
MAX_ITEMS = 1000  # spans per envelope item, as sentry-sdk 3 batches them
Attribute = dict[str, Any]


def typed(value: Any) -> Attribute:
    """One attribute value in the v2 wire format (``{"value": ..., "type": ...}``), as sentry-sdk 3 writes it."""
    if isinstance(value, bool):
        return {"value": value, "type": "boolean"}
    if isinstance(value, int):
        return {"value": value, "type": "integer"}
    if isinstance(value, float):
        return {"value": value, "type": "double"}
    if isinstance(value, str):
        return {"value": value, "type": "string"}
    if isinstance(value, (list, tuple)):
        values = list(value)
        if not values or (
            type(values[0]) in (bool, int, float, str) and all(type(v) is type(values[0]) for v in values)
        ):
            return {"value": values, "type": "array"}
    return {"value": str(value), "type": "string"}


class SpanItemSender:
    """Sends one finished local trace as one envelope of span v2 items, through the client bound to ``slot``."""

    def __init__(self, slot: ClientSlot, dsc: DscSource | None = None, send_pii: bool = False) -> None:
        self._slot = slot
        self._dsc = dsc
        self._send_pii = send_pii
        self._fixed: tuple[dict[str, Any], dict[str, Attribute], dict[str, Attribute]] | None = None

    def _attributes(self, static: dict[str, Any]) -> tuple[dict[str, Attribute], dict[str, Attribute]]:
        """What ``capture_event`` would add to an event (``envelopes.static_fields``), as span attributes.

        Worked out once per bound client: on every span, and on the segment only.
        """
        fixed = self._fixed
        if fixed is not None and fixed[0] is static:
            return fixed[1], fixed[2]
        common: dict[str, Any] = {
            "sentry.trace_lifecycle": "stream",
            "sentry.sdk.name": static["sdk"]["name"],
            "sentry.sdk.version": static["sdk"]["version"],
            "process.runtime.name": RUNTIME["name"],
            "process.runtime.version": RUNTIME["version"],
        }
        common.update({f"sentry.{key}": static[key] for key in ("release", "environment", "dist") if key in static})
        typed_common = {key: typed(value) for key, value in common.items()}
        segment_only = {
            "sentry.platform": typed(static["platform"]),
            "sentry.sdk.integrations": typed(static["sdk"]["integrations"]),
        }
        self._fixed = (static, typed_common, segment_only)  # one assignment: threads never see a half
        return typed_common, segment_only

    def __call__(self, root: ReadableSpan, children: list[ReadableSpan], incoming: FrozenDsc | None) -> None:
        client, static = self._slot.bound
        fixed = self._attributes(static)
        root_attrs = sentry_attributes(root, self._send_pii)
        request = request_from_span(root.attributes or {}, False) if root.kind == SpanKind.SERVER else None
        if request is not None:  # the URL without its query, as the transaction's ``request.url``
            root_attrs.setdefault("url.full", request["url"])
        name = description(root, root_attrs)
        routed = "http.route" in root_attrs
        segment = {
            "sentry.segment.id": typed(trace.format_span_id(root.context.span_id)),
            "sentry.segment.name": typed(name),
        }
        items = [self._item(root, root_attrs, segment, fixed, True, "route" if routed else "custom")]
        items.extend(
            self._item(child, sentry_attributes(child, self._send_pii), segment, fixed, False, None)
            for child in children
        )
        headers: dict[str, Any] = {"sent_at": format_timestamp(datetime.now(timezone.utc))}
        if self._dsc is not None:
            # A trace kept for an error or slowness keeps the head's "no": Sentry's extrapolation stays honest.
            sampled = head_sampled(root)
            headers["trace"] = self._dsc.for_trace(root.context.trace_id, sampled, name if routed else None, incoming)
        envelope = Envelope(headers=headers, items=list(_chunks(items)))
        deliver(client, envelope)

    def _item(
        self,
        span: ReadableSpan,
        attrs: dict[str, Any],
        segment: dict[str, Attribute],
        fixed: tuple[dict[str, Attribute], dict[str, Attribute]],
        is_segment: bool,
        source: str | None,
    ) -> dict[str, Any]:
        attributes = {key: typed(value) for key, value in attrs.items()}
        attributes["sentry.op"] = typed(operation(span, attrs))
        attributes["sentry.origin"] = typed(ORIGIN)
        attributes.update(segment)
        common, segment_only = fixed
        attributes.update(common)
        if source is not None:
            attributes["sentry.segment.name.source"] = typed(source)
            attributes.update(segment_only)
        error = span_status(span, attrs) != "ok" or span.status.status_code == StatusCode.ERROR
        item: dict[str, Any] = {
            "trace_id": trace.format_trace_id(span.context.trace_id),
            "span_id": trace.format_span_id(span.context.span_id),
            "name": description(span, attrs),
            "status": "error" if error else "ok",
            "is_segment": is_segment,
            "start_timestamp": (span.start_time or 0) / 1e9,
            "end_timestamp": (span.end_time or 0) / 1e9,
            "attributes": attributes,
        }
        if span.parent is not None:
            item["parent_span_id"] = trace.format_span_id(span.parent.span_id)
        return item


def _chunks(items: list[dict[str, Any]]) -> Iterator[Item]:
    for start in range(0, len(items), MAX_ITEMS):
        chunk = items[start : start + MAX_ITEMS]
        payload = json.dumps({"version": 2, "items": chunk}, separators=(",", ":"), default=str).encode()
        yield Item(
            type="span",
            content_type=CONTENT_TYPE,
            headers={"item_count": len(chunk)},
            payload=PayloadRef(bytes=payload),
        )
