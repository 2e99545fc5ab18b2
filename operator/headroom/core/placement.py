"""Placement: which account a session runs on next. The one function first placement and
rescue both call: a rescuer with a roster of its own is blind exactly when it matters.

Order among schedulable accounts: highest priority, then most headroom per session (the
account's headroom shared among its running sessions and this one), then fewest active
sessions, then name. Deterministic for equal inputs.

Before the ranking, two rules about the session's model and the accounts' warnings
(headroom.core.models): an account that cannot serve the session's model now (a per-model
weekly window walled, or the model needs usage credits the account lacks) is not eligible for
it, though it stays Available for other models; and an account with a window the session
draws on past a warning threshold (allowed_warning) is taken only when no eligible account
without one can take the session: a tier above the ranking, not a weight in it.

Ranking by plain headroom was the first design. An account's utilization is only learned when an
attempt ends, so plain headroom sends every new session to the same account until it is full,
and it walls sooner: in `make simulate` that ranking reached 0.66 productivity against 0.77
for this one (docs/simulation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from headroom.core.accounts import (
    Account,
    AccountPhase,
    account_state,
    admitted,
    headroom,
    unavailable_until,
)
from headroom.core.durations import format_time
from headroom.core.models import blocked_for, warned
from headroom.core.selectors import matches


class AuthPath(StrEnum):
    PRIMARY = "primary"
    FALLBACK = "fallback"


class AccountScope(StrEnum):
    """Which kinds of account a selector ranges over (spec.accountScope)."""

    NAMESPACED = "Namespaced"  # the ClaudeAccounts of the session's namespace
    CLUSTER = "Cluster"  # the ClusterClaudeAccounts that admit the session's namespace
    ALL = "All"  # both, ranked together


def in_scope(account: Account, scope: AccountScope) -> bool:
    if scope is AccountScope.ALL:
        return True
    return account.cluster == (scope is AccountScope.CLUSTER)


@dataclass(frozen=True)
class Placed:
    account: str  # the account's ref (core.accounts.account_ref)
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
    # The session's spec.model (None: the CLI's default): which per-model windows and credit
    # records of an account concern it. An account that cannot serve it (a model that needs
    # credits the account lacks) is not used at all, not even as a last resort: placing the
    # session back there would only fail again at once, in a loop without a swap to count.
    model: str | None = None
    scope: AccountScope = AccountScope.NAMESPACED
    fallback_scope: AccountScope = AccountScope.NAMESPACED
    # Where the session lives, for the cluster accounts' allowedNamespaces.
    namespace: str = ""
    namespace_labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def may_use_cluster_accounts(self) -> bool:
        fallback = [self.fallback_scope] if self.fallback_selector is not None else []
        return {self.scope, *fallback} != {AccountScope.NAMESPACED}

    def admits(self, account: Account) -> bool:
        return not account.cluster or admitted(account, self.namespace, self.namespace_labels)


def schedulable(account: Account, load: Mapping[str, int], now: datetime) -> bool:
    """`load` counts active sessions by account ref."""
    return (
        account_state(account, now).phase is AccountPhase.AVAILABLE
        and load.get(account.ref, 0) < account.max_sessions
    )


def _rank(account: Account, load: Mapping[str, int], now: datetime) -> tuple[Any, ...]:
    sessions = load.get(account.ref, 0)
    share = headroom(account, now) / (sessions + 1)
    return (-account.priority, -share, sessions, account.ref)


def place(
    accounts: Sequence[Account], load: Mapping[str, int], request: Request, now: datetime
) -> Placed | NoHeadroom:
    """Choose an account for one session. `accounts` are the session namespace's
    ClaudeAccounts and the ClusterClaudeAccounts; `load` (by ref) must not count the session
    itself."""
    primary = _pool(accounts, request.selector, request.scope)
    primary_refs = {a.ref for a in primary}
    fallback = (
        [
            a
            for a in _pool(accounts, request.fallback_selector, request.fallback_scope)
            if a.ref not in primary_refs
        ]
        if request.fallback_selector is not None
        else []
    )

    def usable(pool: list[Account]) -> list[Account]:
        open_ = [
            a
            for a in pool
            if request.admits(a)
            and schedulable(a, load, now)
            and blocked_for(a, request.model, now) is None
        ]
        # Leaving means "elsewhere first", not "never again": a session whose selector matches
        # only the account it left goes back there once that account's wall has reset, instead
        # of waiting for a reset that already happened (found by the simulator and tests/faults).
        # It also keeps a session off the paid fallback while its own pool has room.
        return [a for a in open_ if a.ref != request.avoid] or open_

    # Fallback only when no primary account can take the session, and that
    # holds for `prefer` too: a session retrying in place on a fallback account returns to a
    # primary one as soon as one has room. Within one pool, `prefer` wins over the ranking.
    for path, pool in ((AuthPath.PRIMARY, primary), (AuthPath.FALLBACK, fallback)):
        candidates = usable(pool)
        if not candidates:
            if any(_being_checked(a) and request.admits(a) for a in pool):
                # An account of this pool is seconds from usable (created together with the
                # session): wait for it instead of spending the fallback or a worse pool.
                break
            continue
        candidates = _healthiest(candidates, request, now)
        if request.prefer is not None and any(a.ref == request.prefer for a in candidates):
            return Placed(request.prefer, path)
        best = min(candidates, key=lambda a: _rank(a, load, now))
        return Placed(best.ref, path)
    return _no_headroom(primary + fallback, load, request, now)


def _healthiest(candidates: list[Account], request: Request, now: datetime) -> list[Account]:
    """The warning tier: accounts without a warned window the session draws on, if any can
    take it; only otherwise the warned ones."""
    return [a for a in candidates if not warned(a, request.model, now)] or candidates


def _pool(
    accounts: Sequence[Account], selector: Mapping[str, Any] | None, scope: AccountScope
) -> list[Account]:
    return [a for a in accounts if in_scope(a, scope) and matches(selector, a.labels)]


def _no_headroom(
    matched: list[Account], load: Mapping[str, int], request: Request, now: datetime
) -> NoHeadroom:
    if not matched:
        return NoHeadroom(None, f"no {_kinds(request)} matches the session's accountSelector")
    admitted_ = [a for a in matched if request.admits(a)]
    resets = [t for a in admitted_ if (t := _usable_again(a, request, now)) is not None]
    earliest = min(resets) if resets else None
    reasons = [_why_not(a, load, request, now) for a in sorted(matched, key=lambda a: a.ref)]
    shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
    if any(_being_checked(a) for a in admitted_):
        head = "waiting for the operator to check an account's credentials"
    elif earliest is not None:
        head = f"no account has headroom until {format_time(earliest)}"
    else:
        head = "no account has headroom, and none will reset by itself"
    return NoHeadroom(earliest, f"{head}: {shown}")


def _usable_again(account: Account, request: Request, now: datetime) -> datetime | None:
    """When the account can take this session again by itself: when both its wall (if any)
    and the per-model limit that keeps this session's model off it (if any) have ended; None
    when either does not end by itself."""
    until = unavailable_until(account, now)
    if until is None and account_state(account, now).phase is not AccountPhase.AVAILABLE:
        return None
    block = blocked_for(account, request.model, now)
    if block is None:
        return until
    if block.until is None:
        return None
    return max(until, block.until) if until is not None else block.until


def _being_checked(account: Account) -> bool:
    return not account.credentials_checked and not account.paused


def _kinds(request: Request) -> str:
    scopes = {request.scope, request.fallback_scope if request.fallback_selector else request.scope}
    if scopes == {AccountScope.NAMESPACED}:
        return "ClaudeAccount"
    if scopes == {AccountScope.CLUSTER}:
        return "ClusterClaudeAccount"
    return "ClaudeAccount or ClusterClaudeAccount"


def _why_not(account: Account, load: Mapping[str, int], request: Request, now: datetime) -> str:
    if not request.admits(account):
        return (
            f"{account.ref} does not admit namespace {request.namespace} "
            "(its spec.allowedNamespaces)"
        )
    state = account_state(account, now)
    if state.phase is not AccountPhase.AVAILABLE:
        return f"{account.ref} is {state.phase.value} ({state.message})"
    block = blocked_for(account, request.model, now)
    if block is not None:
        model = request.model or "the default model"
        return f"{account.ref} {block.message} (the session's model: {model})"
    return f"{account.ref} is full ({load.get(account.ref, 0)}/{account.max_sessions})"
