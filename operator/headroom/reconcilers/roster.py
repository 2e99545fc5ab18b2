"""The roster: every ClaudeAccount and ClusterClaudeAccount, read through kopf's indexes (one
per kind), so that placement, the reconcilers and the metrics never disagree about which
accounts exist or what they say. Cluster accounts sit under namespace "".

kopf keeps the index current from its watch. Signals this operator has just acted on (a wall,
a 401, a drill) are kept in an overlay until the account's status catches up, so placement
never trusts a stale view for the few milliseconds a status write takes to come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict, Unpack

from headroom.contract import crd
from headroom.core.accounts import (
    DEFAULT_KEY,
    Account,
    CredentialType,
    ModelCredit,
    NamespaceAdmission,
    Window,
    ref_key,
)
from headroom.core.durations import parse_time
from headroom.core.windows import model_credits_from_status, window_from_status


@dataclass(frozen=True)
class Signals:
    walled_until: datetime | None = None
    wall_window: str | None = None
    wall_hash: str | None = None
    auth_failed_hash: str | None = None
    drill_until: datetime | None = None
    # Per-model windows walled (window, until) and models that need credits, just learned.
    model_walls: tuple[tuple[str, datetime], ...] = ()
    model_credits: tuple[ModelCredit, ...] = ()


class SignalChanges(TypedDict, total=False):
    """The Signals fields one `Roster.note` sets; the others keep their values."""

    walled_until: datetime | None
    wall_window: str | None
    wall_hash: str | None
    auth_failed_hash: str | None
    drill_until: datetime | None
    model_walls: tuple[tuple[str, datetime], ...]
    model_credits: tuple[ModelCredit, ...]


def account_from_body(body: Mapping[str, Any]) -> Account:
    """An Account from a ClaudeAccount or ClusterClaudeAccount object (spec and the status the
    operator wrote)."""
    meta, spec = body["metadata"], body.get("spec") or {}
    status = body.get("status") or {}
    creds = spec.get("credentials") or {}
    drill = status.get("drill") or {}
    kind = CredentialType(creds.get("type", "OAuthToken"))
    return Account(
        namespace=meta.get("namespace") or "",
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        credential_type=kind,
        credential_key=creds.get("key") or DEFAULT_KEY[kind],
        max_sessions=int(spec.get("maxSessions", crd.ACCOUNT_MAX_SESSIONS)),
        priority=int(spec.get("priority", crd.ACCOUNT_PRIORITY)),
        paused=bool(spec.get("paused", crd.ACCOUNT_PAUSED)),
        # The account reconciler records the hash only while the Secret and its key are readable.
        credentials_hash=status.get("credentialsHash"),
        credentials_problem=_creds_message(status),
        credentials_checked=bool(_condition(status, "CredentialsValid")),
        auth_failed_hash=status.get("authFailedHash"),
        walled_until=parse_time(status.get("walledUntil")),
        wall_window=(status.get("lastSignal") or {}).get("window"),
        wall_hash=status.get("walledHash") or None,
        drill_until=parse_time(drill.get("until")),
        windows=tuple(window_from_status(w) for w in status.get("windows") or [] if "name" in w),
        model_credits=model_credits_from_status(status.get("modelCredits")),
        usage_denied_hash=status.get("usageDeniedHash") or None,
        duplicate_of=status.get("duplicateOf") or None,
        admits=_admission(spec) if not meta.get("namespace") else None,
        created=parse_time(meta.get("creationTimestamp")),
    )


def _admission(spec: Mapping[str, Any]) -> NamespaceAdmission:
    allowed = spec.get("allowedNamespaces") or {}
    selector = allowed.get("selector")
    return NamespaceAdmission(
        names=frozenset(allowed.get("names") or ()),
        selector=dict(selector) if selector is not None else None,
    )


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _creds_message(status: Mapping[str, Any]) -> str:
    cond = _condition(status, "CredentialsValid")
    if not cond:
        return "the operator has not checked the credentials yet"
    return str(cond.get("message", "")) if cond.get("status") != "True" else ""


def merge(account: Account, signals: Signals | None) -> Account:
    if signals is None:
        return account
    ours_is_later = signals.walled_until is not None and (
        account.walled_until is None or signals.walled_until >= account.walled_until
    )
    return replace(
        account,
        walled_until=_later(account.walled_until, signals.walled_until),
        wall_window=signals.wall_window if ours_is_later else account.wall_window,
        wall_hash=signals.wall_hash if ours_is_later else account.wall_hash,
        auth_failed_hash=signals.auth_failed_hash or account.auth_failed_hash,
        drill_until=_later(account.drill_until, signals.drill_until),
        windows=_with_model_walls(account.windows, signals.model_walls),
        model_credits=_with_credits(account.model_credits, signals.model_credits),
    )


def _with_model_walls(
    windows: tuple[Window, ...], walls: tuple[tuple[str, datetime], ...]
) -> tuple[Window, ...]:
    """The status windows with the per-model walls the overlay knows of and status not yet."""
    if not walls:
        return windows
    by_name = {w.name: w for w in windows}
    for name, until in walls:
        known = by_name.get(name)
        if known is None or known.status != "rejected" or (known.resets_at or until) < until:
            by_name[name] = Window(name, "rejected", 1.0, until)
    return tuple(by_name[name] for name in sorted(by_name))


def _with_credits(
    recorded: tuple[ModelCredit, ...], learned: tuple[ModelCredit, ...]
) -> tuple[ModelCredit, ...]:
    latest = {c.model: c for c in recorded}
    for credit in learned:
        if credit.model not in latest or latest[credit.model].learned_at < credit.learned_at:
            latest[credit.model] = credit
    return tuple(latest[model] for model in sorted(latest))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class Roster:
    def __init__(self) -> None:
        self._index: Mapping[str, Iterable[Account]] | None = None
        self._cluster: Mapping[str, Iterable[Account]] = {}
        self._signals: dict[tuple[str, str], Signals] = {}

    def attach(
        self,
        index: Mapping[str, Iterable[Account]],
        cluster: Mapping[str, Iterable[Account]] | None = None,
    ) -> None:
        """Called with kopf's live indexes (namespace -> accounts; "" -> cluster accounts) the
        first time a handler runs."""
        self._index = index
        self._cluster = cluster if cluster is not None else {}

    @property
    def attached(self) -> bool:
        return self._index is not None

    def accounts(self, namespace: str) -> list[Account]:
        """The ClaudeAccounts of one namespace, or with "" the ClusterClaudeAccounts."""
        index = self._cluster if not namespace else self._index
        if index is None or namespace not in index:
            return []
        return [merge(a, self._signals.get((namespace, a.name))) for a in index[namespace]]

    def for_sessions_of(self, namespace: str) -> list[Account]:
        """Every account a session of `namespace` could be placed on, before its selector,
        scope and the cluster accounts' allowedNamespaces are applied."""
        return self.accounts(namespace) + self.accounts("")

    def every(self) -> list[Account]:
        namespaces = [ns for ns in self._index or {} if ns]
        return [a for ns in namespaces for a in self.accounts(ns)] + self.accounts("")

    def get(self, namespace: str, name: str) -> Account | None:
        for account in self.accounts(namespace):
            if account.name == name:
                return account
        return None

    def by_ref(self, session_namespace: str, ref: str) -> Account | None:
        return self.get(*ref_key(session_namespace, ref))

    def note(self, namespace: str, name: str, **changes: Unpack[SignalChanges]) -> None:
        current = self._signals.get((namespace, name), Signals())
        self._signals[(namespace, name)] = replace(current, **changes)

    def signals(self, namespace: str, name: str) -> Signals | None:
        return self._signals.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self._signals.pop((namespace, name), None)
