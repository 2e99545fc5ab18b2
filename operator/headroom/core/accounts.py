"""A ClaudeAccount as the decision core sees it, and the account state it derives.

The phase is derived, never stored as a source of truth: it follows from `paused`, the
credentials' health, walls and drills at a given `now`. That is what lets a wall expire by
itself and an AuthFailed account heal the moment its Secret changes.

Two kinds share this shape: a ClaudeAccount serves sessions of its own namespace, a
ClusterClaudeAccount (namespace "") serves the namespaces it admits. A session names the
account it runs on by its *ref*: the bare name for a ClaudeAccount of its namespace,
`ClusterClaudeAccount/<name>` for a cluster account ("/" never occurs in an object name, so
the two cannot collide, and kubectl accepts the ref as it is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from headroom.core.selectors import matches


class AccountPhase(StrEnum):
    AVAILABLE = "Available"
    WALLED = "Walled"
    AUTH_FAILED = "AuthFailed"
    PAUSED = "Paused"
    DUPLICATE = "Duplicate"
    UNKNOWN = "Unknown"


CLUSTER_KIND = "ClusterClaudeAccount"
NAMESPACED_KIND = "ClaudeAccount"
CLUSTER_REF_PREFIX = CLUSTER_KIND + "/"
AccountKey = tuple[str, str]  # (namespace, name); namespace "" for a ClusterClaudeAccount


def account_ref(namespace: str, name: str) -> str:
    """How a session's status, its pods and messages name an account (see the module doc)."""
    return CLUSTER_REF_PREFIX + name if not namespace else name


def ref_key(session_namespace: str, ref: str) -> AccountKey:
    """The account a session's ref names, seen from the session's namespace."""
    if ref.startswith(CLUSTER_REF_PREFIX):
        return ("", ref[len(CLUSTER_REF_PREFIX) :])
    return (session_namespace, ref)


def describe(key: AccountKey) -> str:
    """An account as a sentence names it: `ClaudeAccount team-a/max-1`."""
    namespace, name = key
    return f"{CLUSTER_KIND} {name}" if not namespace else f"{NAMESPACED_KIND} {namespace}/{name}"


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
    # Past a warning threshold (allowed_warning): still usable, placement's last choice.
    warning: bool = False
    surpassed_threshold: float | None = None


@dataclass(frozen=True)
class ModelCredit:
    """A model the account cannot run because it needs usage credits the account lacks,
    learned from an attempt (status.modelCredits[]). It holds while the Secret holds the
    credential it was learned with, until `retry_at` (the operator's credits recheck)."""

    model: str  # headroom.core.models.model_key of the session's spec.model
    learned_at: datetime
    retry_at: datetime
    credentials_hash: str | None


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
    # The credentialsHash a wall was bound to, for a wall that a new credential ends (a spent
    # usage credit without a refresh time); None: the wall holds whatever the Secret holds.
    wall_hash: str | None = None
    drill_until: datetime | None = None
    windows: tuple[Window, ...] = ()
    model_credits: tuple[ModelCredit, ...] = ()
    # The credentialsHash the usage endpoint refused (403): not read again while it holds.
    usage_denied_hash: str | None = None
    # Another account object holding the same credential, older than this one: using both
    # would count one subscription twice (maxSessions, walls), so this one is not used.
    duplicate_of: str | None = None
    # Cluster accounts only: the namespaces whose sessions may use it.
    admits: NamespaceAdmission | None = field(default=None, hash=False)
    created: datetime | None = None  # metadata.creationTimestamp: who came first

    @property
    def cluster(self) -> bool:
        return not self.namespace

    @property
    def key(self) -> AccountKey:
        return (self.namespace, self.name)

    @property
    def ref(self) -> str:
        return account_ref(self.namespace, self.name)


@dataclass(frozen=True)
class NamespaceAdmission:
    """spec.allowedNamespaces of a ClusterClaudeAccount: listed names, or namespaces whose
    labels match the selector (either admits)."""

    names: frozenset[str] = frozenset()
    selector: Mapping[str, Any] | None = field(default=None, hash=False)

    def admits(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if namespace in self.names:
            return True
        return self.selector is not None and matches(self.selector, labels)


def admitted(account: Account, namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether a session of `namespace` may run on the account. A ClaudeAccount serves only
    its own namespace; a ClusterClaudeAccount without allowedNamespaces serves none."""
    if not account.cluster:
        return account.namespace == namespace
    return account.admits is not None and account.admits.admits(namespace, labels)


@dataclass(frozen=True)
class AccountState:
    phase: AccountPhase
    reason: str  # CamelCase, for the Ready condition
    message: str  # a sentence for the person on call


def first_holder(account: Account, others: Iterable[Account]) -> Account | None:
    """The account object that holds `account`'s credential first, when that is another one:
    the oldest by creation, then the cluster kind, then namespace and name (a total order,
    so every pass, on any replica, picks the same one). None while the hash is unknown."""
    if account.credentials_hash is None:
        return None
    same = [o for o in others if o.credentials_hash == account.credentials_hash]
    first = min([account, *same], key=_seniority)
    return None if first.key == account.key else first


def _seniority(account: Account) -> tuple[datetime, str, str]:
    return (account.created or datetime.max.replace(tzinfo=UTC), account.namespace, account.name)


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
    if account.duplicate_of is not None:
        return AccountState(
            AccountPhase.DUPLICATE,
            "DuplicateCredential",
            f"holds the same credential as {account.duplicate_of}, which is older: not used, so"
            " one subscription is never counted as two",
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
    if walled(account, now) and account.walled_until is not None and account.wall_hash:
        return AccountState(
            AccountPhase.WALLED,
            "CreditsSpent",
            f"usage credit spent ({account.wall_window}) with no refresh time given; tried again"
            f" at {_clock(account.walled_until)}, or at once when the Secret's content changes",
        )
    if walled(account, now) and account.walled_until is not None:
        window = f" ({account.wall_window})" if account.wall_window else ""
        return AccountState(
            AccountPhase.WALLED,
            "UsageLimitReached",
            f"usage limit reached{window}; resets at {_clock(account.walled_until)}",
        )
    return AccountState(AccountPhase.AVAILABLE, "Available", "ready for new sessions")


def walled(account: Account, now: datetime) -> bool:
    """The account's own wall (not a drill) holds at `now`: its time has not come, and the
    Secret still holds the credential the wall was bound to, if it was bound to one."""
    if account.walled_until is None or account.walled_until <= now:
        return False
    return account.wall_hash is None or account.wall_hash == account.credentials_hash


def unavailable_until(account: Account, now: datetime) -> datetime | None:
    """When a walled or drilled account becomes usable again by itself; None if it will not
    (paused, auth failed, bad credentials) or is usable now."""
    state = account_state(account, now)
    if state.phase is not AccountPhase.WALLED:
        return None
    wall = account.walled_until if walled(account, now) else None
    ends = [t for t in (wall, account.drill_until) if t is not None and t > now]
    return max(ends) if ends else None


def headroom(account: Account, now: datetime) -> float:
    """1 - the highest utilization among windows that have not reset yet (0..1)."""
    live = [w.utilization for w in account.windows if w.resets_at is None or w.resets_at > now]
    return max(0.0, 1.0 - max(live, default=0.0))


def _clock(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
