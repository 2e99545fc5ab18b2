"""Placement: which account a session runs on next. The one function first placement and
rescue both call: a rescuer with a roster of its own is blind exactly when it matters.

Order among schedulable accounts: highest priority, then most headroom per session (the
account's headroom shared among its running sessions and this one), then fewest active
sessions, then name. Deterministic for equal inputs.

Ranking by plain headroom was the first design. An account's utilization is only learned when an
attempt ends, so plain headroom sends every new session to the same account until it is full,
and it walls sooner: in `make simulate` that ranking reached 0.66 productivity against 0.77
for this one (docs/simulation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from headroom.core.accounts import Account, AccountPhase, account_state, headroom, unavailable_until
from headroom.core.durations import format_time
from headroom.core.selectors import matches


class AuthPath(StrEnum):
    PRIMARY = "primary"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Placed:
    account: str
    auth_path: AuthPath


@dataclass(frozen=True)
class NoHeadroom:
    earliest_reset: datetime | None  # None: nothing will free up by itself
    message: str


@dataclass(frozen=True)
class Request:
    """What a session asks of placement."""

    selector: Mapping[str, Any] | None
    fallback_selector: Mapping[str, Any] | None = None  # None: the session has no fallback
    # The account the session is leaving (walled, 401, drill, repeated throttles): any other
    # account of the same pool first, this one only when nothing else in the pool can take it.
    avoid: str | None = None
    prefer: str | None = None  # stay here if it can still take the session (retry in place)


def schedulable(account: Account, load: Mapping[str, int], now: datetime) -> bool:
    return (
        account_state(account, now).phase is AccountPhase.AVAILABLE
        and load.get(account.name, 0) < account.max_sessions
    )


def _rank(account: Account, load: Mapping[str, int], now: datetime) -> tuple[Any, ...]:
    sessions = load.get(account.name, 0)
    share = headroom(account, now) / (sessions + 1)
    return (-account.priority, -share, sessions, account.name)


def place(
    accounts: Sequence[Account], load: Mapping[str, int], request: Request, now: datetime
) -> Placed | NoHeadroom:
    """Choose an account for one session. `load` must not count the session itself."""
    primary = [a for a in accounts if matches(request.selector, a.labels)]
    primary_names = {a.name for a in primary}
    fallback = [
        a
        for a in accounts
        if request.fallback_selector is not None
        and a.name not in primary_names
        and matches(request.fallback_selector, a.labels)
    ]

    def usable(pool: list[Account]) -> list[Account]:
        open_ = [a for a in pool if schedulable(a, load, now)]
        # Leaving means "elsewhere first", not "never again": a session whose selector matches
        # only the account it left goes back there once that account's wall has reset, instead
        # of waiting for a reset that already happened (found by the simulator and tests/faults).
        # It also keeps a session off the paid fallback while its own pool has room.
        return [a for a in open_ if a.name != request.avoid] or open_

    # Fallback only when no primary account can take the session, and that
    # holds for `prefer` too: a session retrying in place on a fallback account returns to a
    # primary one as soon as one has room. Within one pool, `prefer` wins over the ranking.
    for path, pool in ((AuthPath.PRIMARY, primary), (AuthPath.FALLBACK, fallback)):
        candidates = usable(pool)
        if not candidates:
            if any(_being_checked(a) for a in pool):
                # An account of this pool is seconds from usable (created together with the
                # session): wait for it instead of spending the fallback or a worse pool.
                break
            continue
        if request.prefer is not None and any(a.name == request.prefer for a in candidates):
            return Placed(request.prefer, path)
        best = min(candidates, key=lambda a: _rank(a, load, now))
        return Placed(best.name, path)
    return _no_headroom(primary + fallback, load, now)


def _no_headroom(matched: list[Account], load: Mapping[str, int], now: datetime) -> NoHeadroom:
    if not matched:
        return NoHeadroom(None, "no ClaudeAccount matches the session's accountSelector")
    resets = [t for a in matched if (t := unavailable_until(a, now)) is not None]
    earliest = min(resets) if resets else None
    reasons = [_why_not(a, load, now) for a in sorted(matched, key=lambda a: a.name)]
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    if any(_being_checked(a) for a in matched):
        head = "waiting for the operator to check an account's credentials"
    elif earliest is not None:
        head = f"no account has headroom until {format_time(earliest)}"
    else:
        head = "no account has headroom, and none will reset by itself"
    return NoHeadroom(earliest, f"{head}: {shown}")


def _being_checked(account: Account) -> bool:
    return not account.credentials_checked and not account.paused


def _why_not(account: Account, load: Mapping[str, int], now: datetime) -> str:
    state = account_state(account, now)
    if state.phase is not AccountPhase.AVAILABLE:
        return f"{account.name} is {state.phase.value} ({state.message})"
    return f"{account.name} is full ({load.get(account.name, 0)}/{account.max_sessions})"
