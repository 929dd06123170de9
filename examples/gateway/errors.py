"""The gateway's error kinds, named as in the error-logging spec.

The spec groups events by exception type name (``InsufficientCredits``, ``RateLimitExceeded``,
``ProviderError``/``APIError``, ``AuthenticationError``, ``ValidationError``), so these are plain,
separate ``Exception`` subclasses: the class name alone decides the fingerprint.
"""

__all__ = [
    "AuthenticationError",
    "InsufficientCreditsError",
    "ProviderAPIError",
    "RateLimitExceeded",
    "ValidationError",
]


class InsufficientCreditsError(Exception):
    """The user cannot pay for the request."""


class RateLimitExceeded(Exception):
    """The user or the upstream provider refused the request for rate reasons."""


class ProviderAPIError(Exception):
    """The upstream LLM provider failed: timeout, unreachable, 5xx, or a broken stream."""


class AuthenticationError(Exception):
    """Credentials were presented but are wrong (a missing API key is a plain 401 instead)."""


class ValidationError(Exception):
    """The request is well-formed JSON but asks for something the gateway rejects."""
