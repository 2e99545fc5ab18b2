"""Remove credentials from text before it reaches a log, an Event, a status field or a
termination message."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Anthropic credentials and the generic shapes they travel in (headers, env assignments).
_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}"),
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer\s+)?[^\s,;\"']+"),
    re.compile(r"(?i)(x-api-key\s*[:=]\s*)[^\s,;\"']+"),
    re.compile(
        r"(?i)((?:ANTHROPIC_API_KEY|CLAUDE_CODE_OAUTH_TOKEN|ANTHROPIC_AUTH_TOKEN)\s*[=:]\s*)[^\s,;\"']+"
    ),
    re.compile(r"(?i)(\"(?:accessToken|refreshToken)\"\s*:\s*\")[^\"]+"),
]
REDACTED = "[redacted]"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret value and every credential-shaped token in `text`."""
    for value in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + REDACTED, text)
    return text


def snippet(text: str, secrets: Iterable[str] = (), limit: int = 120) -> str:
    """A one-line, scrubbed excerpt of at most `limit` characters, for evidence fields."""
    flat = " ".join(scrub(text, secrets).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
