"""Prompt and completion content: the attribute and field names that carry it, kept out by default.

LLM instrumentations and apps put message content under well-known names (OpenTelemetry GenAI,
OpenLLMetry, Sentry's AI monitoring) and in request models' reprs (``content='...'``). Unless
``GATEWAYZ_CAPTURE_MESSAGE_CONTENT`` allows it, these names are handed to the scrubber as keys
whose values are always redacted, so content stays out of every signal the scrubber guards.
"""

from __future__ import annotations

# Matched against the whole key and its last dotted part (case-insensitive).
CONTENT_KEYS: tuple[str, ...] = (
    r"^gen_ai\.(prompt|completion)(\.|$)",
    r"^gen_ai\.(input|output)\.messages$",
    r"^gen_ai\.system_instructions$",
    r"^gen_ai\.request\.messages$",
    r"^gen_ai\.response\.text$",
    r"^gen_ai\.tool\.(call\.)?(arguments|result)$",
    r"^llm\.(prompts?|completions?|input_messages|output_messages)(\.|$)",
    r"^(messages|prompts?|completions?|content|input_messages|output_messages|system_instructions)$",
)
