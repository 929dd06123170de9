"""Privacy: the one scrubber, and where it is applied (spans, Sentry events, log records)."""
