"""The annotations a user (or `kubectl headroom drill`) writes on a ClaudeAccount to run a
failover drill, and how the operator reads them."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from headroom.core.durations import parse_duration

# Any new value starts a drill; the same value again starts nothing.
DRILL_ANNOTATION: Final = "headroom.dev/drill"
# How long that drill treats the account as walled, instead of the operator's --drill-duration.
DRILL_DURATION_ANNOTATION: Final = "headroom.dev/drill-duration"
# A drill is an exercise: a typo such as "10h" for "10m" must not take an account away for days.
SHORTEST_DRILL: Final = timedelta(seconds=1)
LONGEST_DRILL: Final = timedelta(hours=24)


def drill_duration(text: str | None, default: timedelta) -> tuple[timedelta, str]:
    """The drill's duration and, when `text` cannot be used, why (the default applies then)."""
    if text is None:
        return default, ""
    try:
        wanted = parse_duration(text.strip())
    except ValueError as exc:
        return default, f"{DRILL_DURATION_ANNOTATION} ignored: {exc}"
    if not SHORTEST_DRILL <= wanted <= LONGEST_DRILL:
        return default, f"{DRILL_DURATION_ANNOTATION} ignored: {text!r} is not between 1s and 24h"
    return wanted, ""
