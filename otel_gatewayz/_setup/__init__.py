"""Setup: builds every piece once from the settings and hands each what it uses; the SDK configurator."""
