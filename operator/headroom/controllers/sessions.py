"""AgentSession and agent Pod events (both namespaced)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from headroom import GROUP, VERSION
from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_ATTEMPT, LABEL_MANAGED, MANAGER
from headroom.controllers.memo import OperatorMemo
from headroom.core.session import SessionPhase
from headroom.reconcilers import pod_state, session
from headroom.reconcilers.runtime import LivePod

log = logging.getLogger("headroom.session")


def _pod_finished(body: kopf.Body) -> bool:
    status = body.get("status") or {}
    if status.get("phase") in {"Succeeded", "Failed"}:
        return True
    return any(
        (cs.get("state") or {}).get("terminated") for cs in status.get("containerStatuses") or []
    )


def _attempt_of(meta: kopf.Meta) -> int | None:
    """The pod's attempt label as a number; None when it is not one."""
    label = (meta.get("labels") or {}).get(LABEL_ATTEMPT) or "0"
    return int(label) if label.isascii() and label.isdigit() else None


@kopf.index("", "v1", "pods", labels={LABEL_MANAGED: MANAGER})
async def agent_pods_index(
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    body: kopf.Body,
    memo: OperatorMemo,
    **_: Any,
) -> dict[tuple[str, str], LivePod] | None:
    """Live agent pods by session: seeds the ledger after a restart, finds adoptable pods.
    Every event of an agent pod but its deletion comes here first, so this is also where the
    pod cache learns it. Async (like the accounts index) although it never awaits: kopf runs
    a sync handler in a thread pool, a needless hop for every pod event."""
    if memo.runtime is not None:
        memo.runtime.pods.put(dict(body))
    annotations = meta.get("annotations") or {}
    if _pod_finished(body) or ANN_SESSION not in annotations:
        return None
    attempt = _attempt_of(meta)
    if attempt is None:
        # Not a pod this operator made (it writes the attempt as a number): leave it out of the
        # index instead of failing the indexer with a traceback on every event (tests/faults).
        label = (meta.get("labels") or {}).get(LABEL_ATTEMPT)
        log.warning("pod %s/%s: attempt label %r is not a number; ignored", namespace, name, label)
        return None
    live = LivePod(name=name, account=annotations.get(ANN_ACCOUNT, ""), attempt=attempt)
    return {(namespace or "", annotations[ANN_SESSION]): live}


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


def _agent_pod_ended(type: str, body: kopf.Body, meta: kopf.Meta, **_: Any) -> bool:
    """Endings matter (the session records its pod when it creates it), and a container that
    cannot start: its pod never ends, and the session's Ready condition must say why."""
    if type == "DELETED" or _pod_finished(body) or meta.get("deletionTimestamp"):
        return True
    return pod_state.start_problem(dict(body)) is not None


@kopf.on.event("", "v1", "pods", labels={LABEL_MANAGED: MANAGER}, when=_agent_pod_ended)
async def agent_pod_event(
    type: str,
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: OperatorMemo,
    **_: Any,
) -> None:
    rt, ns = memo.acting(), namespace or ""
    if type == "DELETED":
        rt.pods.drop(ns, name)
    owner = (meta.get("annotations") or {}).get(ANN_SESSION)
    if not owner:
        return
    attempt = _attempt_of(meta)
    if attempt is not None and attempt < rt.session_attempts.get((ns, owner), 0):
        # The pod of an attempt the session has already left (typically the finished pod the
        # swap deletes): nothing for the session to do. Seen attempts only grow, so this never
        # skips the current pod, nor a newer one awaiting adoption.
        return
    await session.reconcile(rt, ns, owner, watched=True)
