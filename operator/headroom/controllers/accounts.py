"""ClaudeAccount, ClusterClaudeAccount and Secret events. One handler serves both account
kinds: a cluster account is the account of namespace "" (kopf passes None)."""

from __future__ import annotations

from typing import Any

import kopf

from headroom import GROUP, VERSION
from headroom.controllers.memo import OperatorMemo
from headroom.core.accounts import Account, AccountKey
from headroom.core.drill import DRILL_ANNOTATION
from headroom.reconcilers import account, metrics
from headroom.reconcilers.roster import account_from_body
from headroom.reconcilers.runtime import Runtime

Labels = dict[str, str]


@kopf.index(GROUP, VERSION, "claudeaccounts")
async def claudeaccounts_index(
    namespace: str | None, body: kopf.Body, **_: Any
) -> dict[str, Account]:
    """The roster: namespace -> accounts. The only list of accounts in the operator."""
    return {namespace or "": account_from_body(body)}


@kopf.index(GROUP, VERSION, "clusterclaudeaccounts")
async def clusterclaudeaccounts_index(body: kopf.Body, **_: Any) -> dict[str, Account]:
    """The cluster accounts, all under "" (the roster's second index)."""
    return {"": account_from_body(body)}


@kopf.index("", "v1", "namespaces")
async def namespace_labels_index(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Labels]:
    """Each namespace's labels, for the cluster accounts' spec.allowedNamespaces.selector."""
    return {name: dict(labels)}


@kopf.on.event(GROUP, VERSION, "claudeaccounts")
@kopf.on.event(GROUP, VERSION, "clusterclaudeaccounts")
async def account_event(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    body: kopf.Body,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    rt, ns = memo.acting(), namespace or ""
    _recheck_duplicates(rt, (ns, name))
    if type == "DELETED":
        rt.accounts.drop(ns, name)
        rt.roster.forget(ns, name)
        rt.wakeups.cancel(("account", ns, name))
        rt.own_account_writes.pop((ns, name), None)
        if not ns:
            rt.cluster_credentials.pop(name, None)
        metrics.forget_account(ns, name)
        return
    rt.accounts.put(dict(body))
    if _own_write(rt, ns, name, meta):
        return
    await account.reconcile(rt, ns, name, watched=True)


def _recheck_duplicates(rt: Runtime, changed: AccountKey) -> None:
    """kopf updates the indexes before the handlers of the same event run, so the roster
    already shows this event's credential hash."""
    now = rt.clock()
    for key in account.stale_duplicates(rt, changed):
        rt.wakeups.at(("account", *key), now)


def _own_write(rt: Runtime, ns: str, name: str, meta: kopf.Meta) -> bool:
    """True for the watch event of a reconcile's own status write: outside drills a reconcile
    runs to a fixed point, unless the spec or the drill annotation changed since it read the
    account. Any other change has a newer version."""
    own = rt.own_account_writes.get((ns, name))
    if own is None or own[0] != meta.get("resourceVersion"):
        return False
    _, generation, drill = own
    annotations = meta.get("annotations") or {}
    return generation == meta.get("generation") and drill == annotations.get(DRILL_ANNOTATION)


def _referenced(namespace: str | None, name: str, memo: OperatorMemo, **_: Any) -> bool:
    """Only Secrets an account reads start a pass (kopf hands filters the memo too)."""
    rt = memo.runtime
    readers = rt.secret_refs.get((namespace or "", name), set()) if rt is not None else set()
    return any(account_ns for account_ns, _ in readers)


@kopf.on.event("", "v1", "secrets", when=_referenced)
async def secret_event(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    """A source Secret changed (e.g. a rotated token): re-check the accounts that read it.
    This is how an AuthFailed account heals without anyone touching the ClaudeAccount."""
    rt, ns = memo.acting(), namespace or ""
    version = None if type == "DELETED" else str(meta.get("resourceVersion") or "")
    rt.secrets.seen(ns, name, version)
    for account_ns, account_name in sorted(rt.secret_refs.get((ns, name), ())):
        # A cluster account's Secret has a watch of its own (reconcilers/cluster_secrets).
        if account_ns:
            await account.reconcile(rt, account_ns, account_name, watched=True)
