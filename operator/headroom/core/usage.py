"""What the plan usage endpoint (`GET /api/oauth/usage`) teaches about an account, and when to
ask it again. Pure: every function takes `now`.

The endpoint reports `five_hour`, `seven_day`, `seven_day_opus`, `seven_day_sonnet`, each
`{utilization: 0-100, resets_at: ISO 8601}` or null (tests/runner/data/usage_endpoint.json).
Its windows land in `status.windows` under the same names the attempts' rate-limit events use,
as fractions 0-1. A wall stays unless the endpoint says its window has already reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from headroom.contract.crd import WINDOW_RECORDS
from headroom.core.accounts import Account, walled
from headroom.core.durations import format_time, parse_time
from headroom.core.windows import window_status

JSON = dict[str, Any]
REPORTED_WINDOWS = ("five_hour", "seven_day", "seven_day_opus", "seven_day_sonnet")
# Longest pause after 429s without retry-after or failed reads (Claude Code's own cap: 1 h).
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class ReportedWindow:
    name: str
    utilization: float  # 0-1, as status.windows records it
    resets_at: datetime | None


def parse_report(doc: Any) -> tuple[ReportedWindow, ...]:
    """The windows of an endpoint answer; a window that is null, or whose numbers cannot be
    read, is left out (the answer is untrusted input)."""
    if not isinstance(doc, Mapping):
        return ()
    found = []
    for name in REPORTED_WINDOWS:
        entry = doc.get(name)
        if not isinstance(entry, Mapping):
            continue
        percent = entry.get("utilization")
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            continue
        try:
            resets_at = parse_time(entry.get("resets_at"))
        except ValueError:
            resets_at = None
        found.append(ReportedWindow(name, min(1.0, max(0.0, float(percent) / 100)), resets_at))
    return tuple(found)


def wall_reset(account: Account, report: tuple[ReportedWindow, ...], now: datetime) -> bool:
    """The endpoint says the window the account is walled on has already reset: it reports
    that window below full with a reset time after the wall's (a new period began early).
    A wall without a window, or bound to a credential (a spent credit), is not the
    endpoint's to end."""
    if not walled(account, now) or account.wall_hash or account.walled_until is None:
        return False
    window = next((w for w in report if w.name == account.wall_window), None)
    return (
        window is not None
        and window.utilization < 1.0
        and window.resets_at is not None
        and window.resets_at > account.walled_until
    )


def merged_usage_windows(
    account: Account, report: tuple[ReportedWindow, ...], now: datetime
) -> list[JSON]:
    """The account's status.windows with the endpoint's numbers. The window of a wall that
    holds keeps what the attempt recorded (its reset time is the wall's)."""
    keep_wall = walled(account, now) and not wall_reset(account, report, now)
    by_name: dict[str, JSON] = {w.name: window_status(w) for w in account.windows}
    for window in report:
        if keep_wall and window.name == account.wall_window:
            continue
        old = by_name.get(window.name, {})
        entry: JSON = {
            "name": window.name,
            "status": _status(old, window),
            "utilization": round(window.utilization, 4),
            "observedAt": format_time(now),
        }
        if window.resets_at is not None:
            entry["resetsAt"] = format_time(window.resets_at)
        if entry["status"] == "allowed_warning":  # the attempt's warning and its threshold
            entry.update({k: old[k] for k in ("warning", "surpassedThreshold") if k in old})
        by_name[window.name] = entry
    return sorted(by_name.values(), key=lambda w: w["name"])[:WINDOW_RECORDS]


def _status(old: Mapping[str, Any], window: ReportedWindow) -> str:
    """rejected when full; an attempt's allowed_warning stays while the same period fills."""
    if window.utilization >= 1.0:
        return "rejected"
    same_period = old.get("resetsAt") == (
        format_time(window.resets_at) if window.resets_at else None
    )
    warned = old.get("status") == "allowed_warning" and same_period
    if warned and window.utilization >= float(old.get("utilization", 0.0)):
        return "allowed_warning"
    return "allowed"


@dataclass(frozen=True)
class PollState:
    """One account's polling: when it may be read next and how many reads in a row failed."""

    next_at: datetime
    failures: int = 0


def after_read(now: datetime, interval: timedelta) -> PollState:
    return PollState(next_at=now + interval)


def after_rate_limit(
    state: PollState, now: datetime, interval: timedelta, retry_after: float | None
) -> PollState:
    """A 429: wait what retry-after says (never less than the interval); without it, double
    the pause each time, up to an hour."""
    failures = state.failures + 1
    if retry_after is not None and retry_after > 0:
        pause = max(interval, timedelta(seconds=retry_after))
        return PollState(next_at=now + min(pause, MAX_BACKOFF), failures=failures)
    return replace(after_failure(state, now, interval), failures=failures)


def after_failure(state: PollState, now: datetime, interval: timedelta) -> PollState:
    """No answer, a 5xx, an unreadable body: back off exponentially from the interval."""
    failures = state.failures + 1
    pause = min(interval * (2 ** min(failures, 12)), MAX_BACKOFF)
    return PollState(next_at=now + max(pause, interval), failures=failures)


def denied_message(error_type: str) -> str:
    return (
        f"the usage endpoint refused this credential (403 {error_type}): it lacks the "
        "user:profile scope (a `claude setup-token` token has only user:inference); "
        "utilization is learned from attempts only, and usage is read again once the "
        "Secret's content changes"
    )


def usage_condition(account: Account, had_condition: bool) -> tuple[str, bool, str, str] | None:
    """The UsageReadable condition of an account, once the endpoint refused one of its
    credentials (None before: most accounts never need it)."""
    denied = account.usage_denied_hash
    if denied is None and not had_condition:
        return None
    if denied is not None and denied == account.credentials_hash:
        return ("UsageReadable", False, "UsageNotPermitted", denied_message("permission_error"))
    return (
        "UsageReadable",
        True,
        "CredentialChanged",
        "the Secret's content changed since the usage endpoint refused it: usage is read again",
    )
