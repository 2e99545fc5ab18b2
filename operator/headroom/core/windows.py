"""An account's usage windows as its status records them, and what an attempt's end teaches.

The reconcilers write `merged_windows()` to a ClaudeAccount's `status.windows` and read them
back with `window_from_status()`; the quota simulator calls the same two functions, so it
learns from a termination message exactly what the operator learns, without importing the
reconcilers (and kopf) to do it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from headroom.contract.crd import WINDOW_RECORDS
from headroom.core.accounts import Account, Window
from headroom.core.durations import format_time, parse_time
from headroom.core.outcome import AttemptEnd

JSON = dict[str, Any]


def window_from_status(entry: Mapping[str, Any]) -> Window:
    """One entry of a ClaudeAccount's `status.windows`."""
    return Window(
        name=entry["name"],
        status=entry.get("status", ""),
        utilization=float(entry.get("utilization", 0.0)),
        resets_at=parse_time(entry.get("resetsAt")),
        observed_at=parse_time(entry.get("observedAt")),
    )


def merged_windows(account: Account, end: AttemptEnd, now: datetime) -> list[JSON]:
    """The account's windows updated with what this attempt reported (names are open-ended)."""
    by_name: dict[str, JSON] = {}
    for w in account.windows:
        entry: JSON = {"name": w.name, "status": w.status, "utilization": w.utilization}
        if w.resets_at:
            entry["resetsAt"] = format_time(w.resets_at)
        if w.observed_at:
            entry["observedAt"] = format_time(w.observed_at)
        by_name[w.name] = entry
    for name, utilization in end.utilization.items():
        entry = by_name.setdefault(name, {"name": name})
        entry.update(
            status="allowed", utilization=round(float(utilization), 4), observedAt=format_time(now)
        )
    if end.window and end.resets_at:
        entry = by_name.setdefault(end.window, {"name": end.window, "utilization": 1.0})
        entry.update(
            status="rejected", resetsAt=format_time(end.resets_at), observedAt=format_time(now)
        )
        entry["utilization"] = max(float(entry.get("utilization", 1.0)), 1.0)
    return sorted(by_name.values(), key=lambda w: w["name"])[:WINDOW_RECORDS]
