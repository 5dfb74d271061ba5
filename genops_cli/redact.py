"""Keep secrets out of everything genops stores or prints: error messages from providers can echo an API key.

    redact("Incorrect API key provided: sk-proj-abc123...")   # -> "Incorrect API key provided: sk-***"
"""

from __future__ import annotations

import os
import re

# Provider key shapes (OpenAI sk-/sk-proj-, Anthropic sk-ant-, generic bearer tokens) seen in error messages.
_KEY_PATTERNS = re.compile(r"\b(sk-(?:ant-|proj-)?)[A-Za-z0-9_\-]{8,}|\b(Bearer\s+)[A-Za-z0-9_\-\.=]{8,}")
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_ACCESS_KEY")
_MIN_SECRET_LENGTH = 8  # shorter values are too likely to match ordinary text


def _secret_values() -> list[str]:
    return sorted(
        (value for name, value in os.environ.items()
         if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= _MIN_SECRET_LENGTH),
        key=len,
        reverse=True,
    )


def redact(text: str | None) -> str | None:
    """`text` with the values of secret-looking environment variables and key-shaped tokens masked."""
    if not text:
        return text
    for value in _secret_values():
        if value in text:
            text = text.replace(value, "***")
    return _KEY_PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)
