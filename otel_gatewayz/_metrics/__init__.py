"""Metrics: our instruments, the one drop counter, LLM call metrics, and the multi-worker Prometheus endpoint."""
