"""spec.claude fields the pod builder hands to the runner unchanged (HEADROOM_CLAUDE): one
example shared by both sides' tests, so they check the same contract."""

from __future__ import annotations

from typing import Any

PASSED_THROUGH: dict[str, Any] = {
    "allowedTools": ["Bash(git *)", "Edit"],
    "disallowedTools": ["WebFetch"],
    "appendSystemPrompt": "Be brief.",
    "systemPrompt": "You fix tests.",
    "settings": {"includeCoAuthoredBy": False},
    "outputSchema": {"type": "object"},
    "effort": "high",
    "fallbackModel": "claude-haiku",
}
