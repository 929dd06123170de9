"""Why a request's trace is kept: the rule applied when its local root span ends.

A gateway sends no trace headers to providers by default, so a request's trace is local to the
process and complete when its local root ends. Kept: what the head sampled (``head``), a
request that errored (``error``: the root's status is ERROR, which a recorded error and an
unhandled exception both set, or it answered a failed status, 5xx by default) and one slower
than ``GATEWAYZ_KEEP_SLOWER_THAN`` (``slow``). The reason goes on the kept root as
``gatewayz.sampling.kept``; the head decision itself (sampled flag, ``tracestate``, Sentry DSC)
is never rewritten, so backends extrapolate from the head-sampled traces alone.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from .._context.sampling import ERROR, HEAD, SLOW
from .._errors.storm import TRACE_BUDGET_ATTR

__all__ = ["KeepPolicy"]


class KeepPolicy:
    """The keep rule: head-sampled, errored or slow; ``None`` means drop."""

    def __init__(self, slower_than: float | None, failed_status_codes: tuple[tuple[int, int], ...]) -> None:
        self._slower_than_ns = None if slower_than is None else int(slower_than * 1e9)
        self._failed = failed_status_codes

    def reason(self, root: ReadableSpan) -> str | None:
        """Why ``root``'s trace is kept, or None to drop it."""
        if root.context is not None and root.context.trace_flags.sampled:
            return HEAD
        attrs = root.attributes or {}
        if self._errored(root) and attrs.get(TRACE_BUDGET_ATTR) is not False:
            # Storm control said no (TRACE_BUDGET_ATTR False): the error's event was suppressed and its
            # fingerprint spent its budget of kept traces; it is still counted in the metrics.
            return ERROR
        limit = self._slower_than_ns
        start, end = root.start_time, root.end_time
        if limit is not None and start is not None and end is not None and end - start > limit:
            return SLOW
        return None

    def _errored(self, root: ReadableSpan) -> bool:
        if root.status.status_code is StatusCode.ERROR:
            return True
        attrs = root.attributes or {}
        code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
        return isinstance(code, int) and any(low <= code <= high for low, high in self._failed)
