"""Example applications for otel_gatewayz (the README demo and the end-to-end tests run these)."""
