"""Request context: per-request state, the span processor copying it, instrumentation hooks, propagation, sampling."""
