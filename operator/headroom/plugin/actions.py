"""The writes the plugin makes for a person, each exactly what the docs tell users to write
with kubectl: a drill's annotations, and `spec.paused` of a ClaudeAccount."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from headroom.core.drill import (
    DRILL_ANNOTATION,
    DRILL_DURATION_ANNOTATION,
    LONGEST_DRILL,
    SHORTEST_DRILL,
)
from headroom.core.durations import parse_duration
from headroom.plugin.errors import PluginError

JSON = dict[str, Any]


def drill_patch(now: datetime, duration: str | None) -> JSON:
    """A new drill value (the time, so every run starts a drill) and its duration; without
    one, an earlier duration annotation is removed so the operator's default applies."""
    if duration is not None:
        check_duration(duration)
    return {
        "metadata": {
            "annotations": {
                DRILL_ANNOTATION: now.isoformat(timespec="milliseconds"),
                DRILL_DURATION_ANNOTATION: duration,
            }
        }
    }


def check_duration(text: str) -> timedelta:
    try:
        wanted = parse_duration(text)
    except ValueError as exc:
        raise PluginError(f"--for: {exc}") from exc
    if not SHORTEST_DRILL <= wanted <= LONGEST_DRILL:
        raise PluginError(f"--for: {text!r} is not between 1s and 24h")
    return wanted


def pause_patch(paused: bool) -> JSON:
    return {"spec": {"paused": paused}}
