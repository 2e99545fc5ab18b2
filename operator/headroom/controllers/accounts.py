"""ClaudeAccount and Secret events. Both kinds are namespaced, so `namespace` is never None
here; kopf's signature is generic over cluster-scoped kinds too."""

from __future__ import annotations

from typing import Any

import kopf

from headroom import GROUP, VERSION
from headroom.controllers.memo import OperatorMemo
from headroom.core.accounts import Account
from headroom.core.drill import DRILL_ANNOTATION
from headroom.reconcilers import account, metrics
from headroom.reconcilers.roster import account_from_body
from headroom.reconcilers.runtime import Runtime


@kopf.index(GROUP, VERSION, "claudeaccounts")
async def claudeaccounts_index(
    namespace: str | None, body: kopf.Body, **_: Any
) -> dict[str, Account]:
    """The roster: namespace -> accounts. The only list of accounts in the operator."""
    return {namespace or "": account_from_body(body)}


@kopf.on.event(GROUP, VERSION, "claudeaccounts")
async def account_event(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    rt, ns = memo.acting(), namespace or ""
    if type == "DELETED":
        rt.roster.forget(ns, name)
        rt.wakeups.cancel(("account", ns, name))
        rt.own_account_writes.pop((ns, name), None)
        metrics.forget_account(ns, name)
        return
    if _own_write(rt, ns, name, meta):
        return
    await account.reconcile(rt, ns, name)


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
    return rt is not None and bool(rt.secret_refs.get((namespace or "", name)))


@kopf.on.event("", "v1", "secrets", when=_referenced)
async def secret_event(
    namespace: str | None,
    name: str,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    """A source Secret changed (e.g. a rotated token): re-check the accounts that read it.
    This is how an AuthFailed account heals without anyone touching the ClaudeAccount."""
    rt, ns = memo.acting(), namespace or ""
    for account_name in sorted(rt.secret_refs.get((ns, name), ())):
        await account.reconcile(rt, ns, account_name)
