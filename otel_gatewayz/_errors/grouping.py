"""The spec's fingerprint strategy and user-impact rules: pure functions, and the grouper that applies them.

Fingerprints use the exception that was raised (the outermost of a chain). The spec's
fallback, the first line of the message, is normalised so messages that differ only in
numbers, ids, emails, URLs or quoted values group together.
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


@dataclass(frozen=True)
class ErrorGrouping:
    """How an error is grouped, counted and prioritised."""

    fingerprint: tuple[str, ...]
    category: str
    error_type: str
    user_impact: str


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


def fingerprint_for(
    exc: BaseException, extra_rules: Sequence[tuple[str, str]] = (), scrub: Callable[[str], str] = str
) -> tuple[tuple[str, ...], str]:
    """``(fingerprint, category)`` for the exception that was raised."""
    exc_type = type(exc).__name__
    group = categorise(exc_type, extra_rules)
    if group is not None:
        return (exc_type, group), group if group in CATEGORIES else "other"
    # Scrubbed before normalising: a grouping key is never a place a secret can hide.
    message_key = normalise_message(scrub(_message(exc)))
    return ((exc_type, message_key) if message_key else (exc_type,)), "other"


def _message(exc: BaseException) -> str:
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
    scrub: Callable[[str], str] = str,
) -> ErrorGrouping:
    """Fingerprint, category and impact of one error (``scrub`` cleans the message fallback)."""
    fingerprint, category = fingerprint_for(exc, fingerprint_rules, scrub)
    return ErrorGrouping(fingerprint, category, type(exc).__name__, impact_for(route, impact_rules))


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
        try:
            return group_error(exc, route, self._fingerprint_rules, self._impact_rules, self._scrub)
        except Exception:  # noqa: BLE001 - a user rule must never lose the event
            log_once(
                "grouping-rule",
                logging.ERROR,
                "otel_gatewayz: a grouping rule failed; using the spec's rules",
                exc_info=True,
            )
            fingerprint, category = fingerprint_for(exc, scrub=self._scrub)
            return ErrorGrouping(fingerprint, category, type(exc).__name__, impact_for(route))
