"""The spec's fingerprint strategy and user-impact rules: pure functions, and the grouper that applies them.

Fingerprints use the exception that was raised (the outermost of a chain), except an
``HTTPException`` raised *from* another exception (``raise HTTPException(502) from exc``), which
groups as its cause. The rules (the user's, then the spec's) are tried on the exception's own
type name first, then on each base class name (``openai.RateLimitError`` is an ``APIError``);
a transport error (timeout, refused, a stream cut) raised while the request calls a provider
is a ``provider_error``. The spec's fallback, the first line of the message, is normalised so
messages that differ only in numbers, ids, emails, URLs or quoted values group together. The
provider's HTTP status, when the error carries one, is kept for a tag.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._context.state import RequestState
from .._safety.log import log_once

CATEGORIES = ("insufficient_credits", "rate_limit", "provider_error", "auth_error", "validation_error", "other")

# (substring of the exception type name, group) in the spec's order.
SPEC_FINGERPRINT_RULES: tuple[tuple[str, str], ...] = (
    ("InsufficientCredits", "insufficient_credits"),
    ("RateLimitExceeded", "rate_limit"),
    ("ProviderError", "provider_error"),
    ("APIError", "provider_error"),
    ("AuthenticationError", "auth_error"),
    ("ValidationError", "validation_error"),
)

# (substring of the route template, impact) in the spec's order; anything else is low.
SPEC_IMPACT_RULES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "high"),
    ("/messages", "high"),
    ("/auth", "high"),
    ("/api_keys", "high"),
    ("/users", "medium"),
    ("/payments", "medium"),
)

MAX_MESSAGE_KEY = 100
UNMATCHED_ROUTE = "unmatched"

_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`"), "<value>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b|\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


# Modules whose exceptions are transport failures when raised during a provider call.
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "requests", "urllib3", "anyio", "h11")
_TRANSPORT_BUILTINS = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class ErrorGrouping:
    """How an error is grouped, counted and prioritised."""

    fingerprint: tuple[str, ...]
    category: str
    error_type: str
    user_impact: str
    provider_status_code: int | None = None


def normalise_message(message: str) -> str:
    """The first line of ``message`` with its variable parts replaced, at most 100 characters."""
    first = message.strip().splitlines()[0].strip() if message.strip() else ""
    for pattern, replacement in _NORMALISERS:
        first = pattern.sub(replacement, first)
    return first[:MAX_MESSAGE_KEY]


def categorise(exc_type: str, extra_rules: Sequence[tuple[str, str]] = ()) -> str | None:
    """The spec's group for an exception type name, user rules first; None when none applies."""
    for needle, group in (*extra_rules, *SPEC_FINGERPRINT_RULES):
        if needle in exc_type:
            return group
    return None


def grouped_exception(exc: BaseException) -> BaseException:
    """The exception that decides the group: the cause of an ``HTTPException`` raised from one."""
    seen = 0
    while type(exc).__name__ == "HTTPException" and exc.__cause__ is not None and seen < 10:
        exc, seen = exc.__cause__, seen + 1
    return exc


def _named_classes(exc: BaseException) -> tuple[type, ...]:
    """The exception's class, then its bases, without the universal ones (``Exception``...)."""
    return tuple(cls for cls in type(exc).__mro__ if cls not in (Exception, BaseException, object))


def is_transport_error(exc: BaseException) -> bool:
    """A timeout, refused connection or broken stream of an HTTP client (or the standard library)."""
    if isinstance(exc, _TRANSPORT_BUILTINS):
        return True
    return any(cls.__module__.split(".")[0] in _TRANSPORT_MODULES for cls in _named_classes(exc))


def provider_status_code(exc: BaseException) -> int | None:
    """The HTTP status a provider answered with, as SDK errors carry it (``status_code`` or ``response``)."""
    for candidate in (exc, grouped_exception(exc)):
        status = getattr(candidate, "status_code", None)
        if status is None:
            status = getattr(getattr(candidate, "response", None), "status_code", None)
        if isinstance(status, int) and 100 <= status <= 599 and type(candidate).__name__ != "HTTPException":
            return status
    return None


def fingerprint_for(
    exc: BaseException,
    extra_rules: Sequence[tuple[str, str]] = (),
    provider_call: bool = False,
    scrub: Callable[[str], str] = str,
) -> tuple[tuple[str, ...], str]:
    """``(fingerprint, category)`` for the exception that was raised.

    ``provider_call``: the request was calling a provider, so transport errors are provider errors.
    """
    exc = grouped_exception(exc)
    exc_type = type(exc).__name__
    for cls in _named_classes(exc):
        group = categorise(cls.__name__, extra_rules)
        if group is not None:
            return (exc_type, group), group if group in CATEGORIES else "other"
    if provider_call and is_transport_error(exc):
        return (exc_type, "provider_error"), "provider_error"
    # Scrubbed before normalising: a grouping key is never a place a secret can hide.
    message_key = normalise_message(scrub(message_of(exc)))
    return ((exc_type, message_key) if message_key else (exc_type,)), "other"


def message_of(exc: BaseException) -> str:
    """``str(exc)``, or nothing when the exception cannot say it (a raising ``__str__``)."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - such errors group by their type alone
        return ""


def impact_for(route: str | None, extra_rules: Sequence[tuple[str, str]] = ()) -> str:
    """``high``, ``medium`` or ``low`` for a route template (or path)."""
    if route:
        for needle, impact in (*extra_rules, *SPEC_IMPACT_RULES):
            if needle in route:
                return impact
    return "low"


def group_error(
    exc: BaseException,
    route: str | None,
    fingerprint_rules: Sequence[tuple[str, str]] = (),
    impact_rules: Sequence[tuple[str, str]] = (),
    provider_call: bool = False,
    scrub: Callable[[str], str] = str,
) -> ErrorGrouping:
    """Fingerprint, category and impact of one error (``scrub`` cleans the message fallback)."""
    fingerprint, category = fingerprint_for(exc, fingerprint_rules, provider_call, scrub)
    return ErrorGrouping(
        fingerprint,
        category,
        type(grouped_exception(exc)).__name__,
        impact_for(route, impact_rules),
        provider_status_code(exc),
    )


def route_of(state: RequestState | None) -> str | None:
    """The route template of the request being served, never a raw path."""
    if state is None:
        return None
    route = state.scope.get("route") if state.scope is not None else None
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if state.root_span is not None:
        attr = state.root_span.attributes.get("http.route") if state.root_span.attributes else None
        if isinstance(attr, str):
            return attr
    return UNMATCHED_ROUTE if state.scope is not None else None


class ErrorGrouper:
    """Groups errors by the configured rules (user rules first, then the spec's)."""

    def __init__(
        self,
        fingerprint_rules: Sequence[tuple[str, str]] = (),
        impact_rules: Sequence[tuple[str, str]] = (),
        scrub: Callable[[str], str] = str,
    ) -> None:
        self._fingerprint_rules = tuple(fingerprint_rules)
        self._impact_rules = tuple(impact_rules)
        self._scrub = scrub

    def group(self, exc: BaseException, state: RequestState | None) -> ErrorGrouping:
        """Grouping of ``exc`` raised while serving ``state``; a rule that raises falls back to the spec's."""
        route = route_of(state)
        provider_call = state is not None and bool(state.request.get("provider"))
        try:
            return group_error(exc, route, self._fingerprint_rules, self._impact_rules, provider_call, self._scrub)
        except Exception:  # noqa: BLE001 - a user rule must never lose the event
            log_once(
                "grouping-rule",
                logging.ERROR,
                "otel_gatewayz: a grouping rule failed; using the spec's rules",
                exc_info=True,
            )
            fingerprint, category = fingerprint_for(exc, provider_call=provider_call, scrub=self._scrub)
            return ErrorGrouping(fingerprint, category, type(grouped_exception(exc)).__name__, impact_for(route))
