"""AgentSession and workspace claim events (both namespaced). Agent pods have a watch of the
operator's own (reconcilers/pod_watch)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from headroom import GROUP, VERSION
from headroom.contract.pod import LABEL_MANAGED, MANAGER
from headroom.controllers.memo import OperatorMemo
from headroom.core.session import SessionPhase
from headroom.reconcilers import session

log = logging.getLogger("headroom.session")


@kopf.index("", "v1", "persistentvolumeclaims", labels={LABEL_MANAGED: MANAGER})
async def workspace_claims_index(
    namespace: str | None, name: str, meta: kopf.Meta, **_: Any
) -> dict[tuple[str, str], bool]:
    """The workspace claims the operator made, and whether each is still usable: checked
    before every attempt after the first without a request of its own."""
    return {(namespace or "", name): not meta.get("deletionTimestamp")}


@kopf.on.event(GROUP, VERSION, "agentsessions")
async def session_event(
    type: str,
    namespace: str | None,
    name: str,
    status: kopf.Status,
    meta: kopf.Meta,
    body: kopf.Body,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    rt, ns = memo.acting(), namespace or ""
    if type != "DELETED":
        rt.sessions.put(dict(body))
    if type == "DELETED":
        rt.session_phases.pop((ns, name), None)
        rt.session_attempts.pop((ns, name), None)
        session.forget(rt, ns, name)
        return
    rt.session_phases[(ns, name)] = status.get("phase") or SessionPhase.PENDING
    attempt = status.get("attempt")
    if isinstance(attempt, int):
        rt.session_attempts[(ns, name)] = attempt
    if rt.own_session_writes.get((ns, name)) == (
        meta.get("resourceVersion"),
        meta.get("generation"),
    ):
        # The status write of our own last pass coming back, and no spec change since that pass
        # read the session: a pass runs to a fixed point (or leaves a wake-up), so another one
        # would only read the session and its pod again. Any other change has a newer version.
        return
    await session.reconcile(rt, ns, name, watched=True)
