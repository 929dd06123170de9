"""Safety helpers shared by every part: contain our own failures, log once, run in the background."""
