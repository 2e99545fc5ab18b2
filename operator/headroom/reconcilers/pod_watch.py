"""The agent pods, watched by the operator itself rather than through kopf.

A failover brings several events of pods (the old one ends and is deleted; the new one is
created, bound, started) and only the endings start a pass. kopf's per-event machinery (a
worker per object, cause detection, handler selection) cost more CPU than the pass itself, so
this watch keeps the pods' index and cache up to date cheaply and starts a session pass only
for the events that matter: an ending, a deletion, a container that cannot start.

One watch per namespace the operator serves (one for the cluster with --all-namespaces).
Namespace patterns (team-*) are matched against the namespaces kopf's index has seen.
Nothing is placed until every watch has listed once: the ledger is seeded from that list,
so maxSessions holds across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

# kopf's matcher is not exported; it is the one that decides which namespaces kopf serves, so
# the pod watch uses it rather than a second reading of the same patterns.
from kopf._cogs.structs.references import NamespaceName, match_namespace

from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_ATTEMPT, LABEL_MANAGED, MANAGER
from headroom.kube.client import KubeError
from headroom.reconcilers import pod_state
from headroom.reconcilers.runtime import LivePod, Runtime

log = logging.getLogger("headroom.session")
JSON = dict[str, Any]
SELECTOR = f"{LABEL_MANAGED}={MANAGER}"
_PAUSE = timedelta(seconds=2)  # before listing again after an API error
_RESCOPE = timedelta(seconds=2)  # how often namespace patterns are matched again
# Passes under way at once. A wave of endings runs first come, first served: each pass makes
# its few requests and is done, instead of hundreds advancing in lockstep through the same
# 32 connections, every one of them finishing only when the last does.
PASSES_AT_ONCE = 32
SessionKey = tuple[str, str]


def attempt_of(pod: JSON) -> int | None:
    """The pod's attempt label as a number; None when it is not one."""
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT) or "0"
    return int(label) if label.isascii() and label.isdigit() else None


def finished(pod: JSON) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in {"Succeeded", "Failed"}:
        return True
    containers = status.get("containerStatuses") or []
    return any((cs.get("state") or {}).get("terminated") for cs in containers)


def live_pod(pod: JSON) -> tuple[str, LivePod] | None:
    """(session, what the index keeps) for a live pod this operator made; None otherwise."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if finished(pod) or ANN_SESSION not in annotations:
        return None
    attempt = attempt_of(pod)
    if attempt is None:
        # Not a pod this operator made (it writes the attempt as a number): left out of the
        # index rather than failing on every event (tests/faults).
        label = (meta.get("labels") or {}).get(LABEL_ATTEMPT)
        log.warning("pod %s/%s: attempt label %r is not a number; ignored",
                    meta.get("namespace"), meta.get("name"), label)  # fmt: skip
        return None
    name = str(meta.get("name"))
    return annotations[ANN_SESSION], LivePod(name, annotations.get(ANN_ACCOUNT, ""), attempt)


def starts_a_pass(event_type: str, pod: JSON) -> bool:
    """Endings matter (the session records its pod when it creates it), and a container that
    cannot start: its pod never ends, and the session's Ready condition must say why."""
    if event_type == "DELETED" or finished(pod):
        return True
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    return pod_state.start_problem(pod) is not None


class LivePods(Mapping[SessionKey, list[LivePod]]):
    """(namespace, session) -> its live agent pods: seeds the ledger after a restart and
    finds pods to adopt. The runtime reads it as it read kopf's index."""

    def __init__(self) -> None:
        self._by_session: dict[SessionKey, dict[str, LivePod]] = {}
        self._session_of: dict[tuple[str, str], SessionKey] = {}

    def __getitem__(self, key: SessionKey) -> list[LivePod]:
        return list(self._by_session[key].values())

    def __iter__(self) -> Iterator[SessionKey]:
        return iter(self._by_session)

    def __len__(self) -> int:
        return len(self._by_session)

    def record(self, namespace: str, pod: str, found: tuple[str, LivePod] | None) -> None:
        self.remove(namespace, pod)
        if found is None:
            return
        session, live = found
        self._by_session.setdefault((namespace, session), {})[pod] = live
        self._session_of[(namespace, pod)] = (namespace, session)

    def remove(self, namespace: str, pod: str) -> None:
        key = self._session_of.pop((namespace, pod), None)
        if key is None:
            return
        pods = self._by_session.get(key, {})
        pods.pop(pod, None)
        if not pods:
            self._by_session.pop(key, None)

    def pods_in(self, namespace: str | None) -> set[tuple[str, str]]:
        """(namespace, pod) of the live pods in one namespace (None: all)."""
        return {(ns, pod) for ns, pod in self._session_of if namespace is None or ns == namespace}


class PodWatch:
    """The watches, their shared index, and the passes their events start."""

    def __init__(self, rt: Runtime, patterns: tuple[str, ...]) -> None:
        self.rt = rt
        self.patterns = patterns  # empty: every namespace, with one cluster-wide watch
        self.live = LivePods()
        self._watches: dict[str | None, asyncio.Task[None]] = {}
        self._listed: set[str | None] = set()
        self._passes: set[asyncio.Task[None]] = set()
        self._deferred: set[SessionKey] = set()
        self._slots = asyncio.Semaphore(PASSES_AT_ONCE)
        self._scoped = False

    # --- scope -------------------------------------------------------------------------

    async def run(self) -> None:
        """Runs for the operator's lifetime: keeps one watch per served namespace."""
        try:
            while True:
                for namespace in self._wanted() - set(self._watches):
                    self._watches[namespace] = asyncio.create_task(self._watch(namespace))
                for namespace in set(self._watches) - self._wanted():
                    self._stop(namespace)
                self._scoped = True
                self._update_sync()
                await asyncio.sleep(_RESCOPE.total_seconds())
        finally:
            for namespace in list(self._watches):
                self._stop(namespace)

    def _wanted(self) -> set[str | None]:
        """The namespaces kopf serves, by kopf's own reading of the patterns (globs, comma
        lists, `!` exclusions); a plain name is served even before the namespace is seen."""
        if not self.patterns:
            return {None}
        exact = {p for p in self.patterns if not any(c in p for c in "*?[,!")}
        matched = {
            ns
            for ns in self.rt.known_namespaces()
            if any(match_namespace(NamespaceName(ns), p) for p in self.patterns)
        }
        return {*exact, *matched}

    def _stop(self, namespace: str | None) -> None:
        self._watches.pop(namespace).cancel()
        self._listed.discard(namespace)
        for ns, pod in self.live.pods_in(namespace):
            self.live.remove(ns, pod)

    def _update_sync(self) -> None:
        """Placement waits until the scope is known and every watch in it has listed once."""
        if self._scoped and set(self._watches) <= self._listed:
            self.rt.pods_synced.set()

    # --- one watch ---------------------------------------------------------------------

    async def _watch(self, namespace: str | None) -> None:
        version = ""  # "": list first
        while True:
            try:
                version = version or await self._list(namespace)
                version = await self._follow(namespace, version)
            except KubeError as exc:
                where = namespace or "all namespaces"
                log.warning("watching agent pods in %s: %s; again in %s", where, exc, _PAUSE)
                version = ""
                await asyncio.sleep(_PAUSE.total_seconds())

    async def _follow(self, namespace: str | None, version: str) -> str:
        """Apply watch events after `version` until the server ends the watch; the version
        to watch on from ("" when it is too old and a list must come first). A watch the
        server closes after its timeout goes on from where it was, without a list."""
        async for event in self.rt.kube.watch(namespace, "pods", version, SELECTOR):
            kind = event.get("type")
            if kind == "ERROR":
                return ""  # the version is too old: list again
            pod = event.get("object") or {}
            meta = pod.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            if kind != "BOOKMARK" and meta.get("name"):
                self._apply(str(kind), pod)
        return version

    async def _list(self, namespace: str | None) -> str:
        """List, and make the index exactly what the list says: a pod deleted while no watch
        ran is gone from it too, and its session gets a pass."""
        version, items = await self.rt.kube.list_with_version(namespace, "pods", SELECTOR)
        listed = {(p["metadata"].get("namespace", ""), p["metadata"]["name"]) for p in items}
        for ns, name in self.live.pods_in(namespace) - listed:
            self._gone(ns, name)
        for item in items:
            self._apply("ADDED", item)
        self._listed.add(namespace)
        self._update_sync()
        return version

    def _gone(self, namespace: str, pod: str) -> None:
        cached = self.rt.pods.get(namespace, pod)
        self.live.remove(namespace, pod)
        self.rt.pods.drop(namespace, pod)
        owner = ((cached or {}).get("metadata") or {}).get("annotations", {}).get(ANN_SESSION)
        if owner:
            self._start_pass(namespace, owner, None)

    def _apply(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        if kind == "DELETED":
            self.live.remove(namespace, name)
            self.rt.pods.drop(namespace, name)
        else:
            self.rt.pods.put(pod)
            self.live.record(namespace, name, live_pod(pod))
        owner = (meta.get("annotations") or {}).get(ANN_SESSION)
        if owner and starts_a_pass(kind, pod):
            self._start_pass(namespace, owner, attempt_of(pod))

    # --- passes ------------------------------------------------------------------------

    def _start_pass(self, namespace: str, session: str, attempt: int | None) -> None:
        seen = self.rt.session_attempts.get((namespace, session), 0)
        if attempt is not None and attempt < seen:
            # The pod of an attempt the session has already left (typically the finished pod
            # the swap deletes): nothing for the session to do. Seen attempts only grow, so
            # this never skips the current pod, nor a newer one awaiting adoption.
            return
        if self.rt.reconcile_session is None:
            return
        if not self.rt.active.is_set():
            # A replica that no longer leads acts on nothing; these passes run once it leads
            # again (if it ever does).
            if not self._deferred:
                self._spawn(self._run_deferred())
            self._deferred.add((namespace, session))
            return
        self._spawn(self._pass(namespace, session))

    async def _pass(self, namespace: str, session: str) -> None:
        assert self.rt.reconcile_session is not None
        async with self._slots:
            await self.rt.reconcile_session(self.rt, namespace, session, watched=True)

    async def _run_deferred(self) -> None:
        await self.rt.active.wait()
        pending, self._deferred = self._deferred, set()
        for namespace, session in sorted(pending):
            self._start_pass(namespace, session, None)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._passes.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._passes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session pass failed", exc_info=task.exception())
