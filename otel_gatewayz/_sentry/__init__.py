"""Sentry: client start-up, event enrichment and scrubbing hooks, transactions from spans, the counting transport."""
