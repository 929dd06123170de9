"""Configuration: the settings (one declaration each), their parsers, and the resource every signal carries."""
