"""A ClaudeAccount as the decision core sees it, and the account state it derives.

The phase is derived, never stored as a source of truth: it follows from `paused`, the
credentials' health, walls and drills at a given `now`. That is what lets a wall expire by
itself and an AuthFailed account heal the moment its Secret changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AccountPhase(StrEnum):
    AVAILABLE = "Available"
    WALLED = "Walled"
    AUTH_FAILED = "AuthFailed"
    PAUSED = "Paused"
    UNKNOWN = "Unknown"


class CredentialType(StrEnum):
    OAUTH_TOKEN = "OAuthToken"
    API_KEY = "APIKey"
    CREDENTIALS_FILE = "CredentialsFile"


DEFAULT_KEY: dict[CredentialType, str] = {
    CredentialType.OAUTH_TOKEN: "token",
    CredentialType.API_KEY: "apiKey",
    CredentialType.CREDENTIALS_FILE: "credentials.json",
}


@dataclass(frozen=True)
class Window:
    """One usage window as the last rate-limit signal described it."""

    name: str
    status: str
    utilization: float
    resets_at: datetime | None = None
    observed_at: datetime | None = None


@dataclass(frozen=True)
class Account:
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    credential_type: CredentialType = CredentialType.OAUTH_TOKEN
    credential_key: str = "token"  # key in the runtime Secret the agent pod reads
    max_sessions: int = 1
    priority: int = 0
    paused: bool = False
    # Hash of the source Secret's data; None while the Secret or its key is missing.
    credentials_hash: str | None = None
    credentials_problem: str = ""
    # False until the operator has checked the Secret once: the account is about to become
    # usable, so placement waits for it rather than settling for a fallback (make run, e2e).
    credentials_checked: bool = True
    # The credentialsHash that produced a 401. AuthFailed holds while it equals credentials_hash.
    auth_failed_hash: str | None = None
    walled_until: datetime | None = None
    wall_window: str | None = None
    drill_until: datetime | None = None
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True)
class AccountState:
    phase: AccountPhase
    reason: str  # CamelCase, for the Ready condition
    message: str  # a sentence for the person on call


def account_state(account: Account, now: datetime) -> AccountState:
    """Derive the account's phase. Order matters: a paused account reads Paused even while
    walled, because pausing is the operator's (human's) decision and explains the most."""
    if account.paused:
        return AccountState(AccountPhase.PAUSED, "Paused", "spec.paused is true: no new sessions")
    if account.credentials_hash is None:
        return AccountState(
            AccountPhase.UNKNOWN,
            "CredentialsInvalid",
            account.credentials_problem or "the credentials Secret could not be read",
        )
    if account.auth_failed_hash == account.credentials_hash:
        return AccountState(
            AccountPhase.AUTH_FAILED,
            "AuthenticationFailed",
            "the API rejected these credentials (401); replace the Secret's content to retry",
        )
    if account.drill_until is not None and account.drill_until > now:
        return AccountState(
            AccountPhase.WALLED,
            "Drill",
            f"a failover drill treats the account as walled until {_clock(account.drill_until)}",
        )
    if account.walled_until is not None and account.walled_until > now:
        window = f" ({account.wall_window})" if account.wall_window else ""
        return AccountState(
            AccountPhase.WALLED,
            "UsageLimitReached",
            f"usage limit reached{window}; resets at {_clock(account.walled_until)}",
        )
    return AccountState(AccountPhase.AVAILABLE, "Available", "ready for new sessions")


def unavailable_until(account: Account, now: datetime) -> datetime | None:
    """When a walled or drilled account becomes usable again by itself; None if it will not
    (paused, auth failed, bad credentials) or is usable now."""
    state = account_state(account, now)
    if state.phase is not AccountPhase.WALLED:
        return None
    ends = [t for t in (account.walled_until, account.drill_until) if t is not None and t > now]
    return max(ends) if ends else None


def headroom(account: Account, now: datetime) -> float:
    """1 - the highest utilization among windows that have not reset yet (0..1)."""
    live = [w.utilization for w in account.windows if w.resets_at is None or w.resets_at > now]
    return max(0.0, 1.0 - max(live, default=0.0))


def _clock(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
