"""A witness for the whole history of agent pods in one namespace.

A watch started before a scenario records every ADDED / MODIFIED / DELETED of a Headroom
agent pod. After each event it recomputes the live pods per session and per account, so a
moment with two live pods for one session, or more live pods on an account than its
`maxSessions`, is caught even if it lasted a few milliseconds and is gone by the end.

"Live" is strict: a pod counts until it is gone or its container reported termination; a pod
that is only marked for deletion still counts (a kubelet would still be running it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_MANAGED, MANAGER


@dataclass(frozen=True)
class PodState:
    name: str
    session: str
    account: str
    phase: str
    live: bool


@dataclass
class Violation:
    event: int  # index in the history (1-based)
    what: str


def pod_is_live(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return not any(
        (cs.get("state") or {}).get("terminated") for cs in status.get("containerStatuses") or []
    )


@dataclass
class PodHistory:
    """Runs in a thread; `stop()` ends it. Read `events`, `violations`, `peak_*` afterwards."""

    api: client.ApiClient
    namespace: str
    max_sessions: dict[str, int] = field(default_factory=dict)
    # More namespaces to witness together with `namespace` (one cluster-wide watch, filtered):
    # a cluster account's pods in all of them count against one maxSessions. Pod names must
    # then be unique across them.
    also: tuple[str, ...] = ()
    events: list[tuple[str, PodState]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    peak_per_session: int = 0
    peak_per_account: dict[str, int] = field(default_factory=dict)
    relists: list[str] = field(default_factory=list)  # watch restarts that may have lost events
    _pods: dict[str, PodState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _watch: watch.Watch | None = None
    _resource_version: str = ""
    # Called from the watch thread after each event (e.g. to crash the operator the moment
    # it has created a pod, before it can record it).
    on_event: Callable[[str, PodState], None] | None = None

    def start(self) -> PodHistory:
        core = client.CoreV1Api(self.api)
        listed = self._list(core)
        # The history starts here: whatever exists already is its first state.
        for pod in listed.items:
            self._apply("ADDED", self.api.sanitize_for_serialization(pod))
        self._resource_version = listed.metadata.resource_version
        self._thread = threading.Thread(target=self._run, name="pod-history", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(15)

    @property
    def _selector(self) -> str:
        return f"{LABEL_MANAGED}={MANAGER}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, *self.also)

    def _list(self, core: client.CoreV1Api) -> Any:
        if not self.also:
            return core.list_namespaced_pod(self.namespace, label_selector=self._selector)
        listed = core.list_pod_for_all_namespaces(label_selector=self._selector)
        listed.items = [p for p in listed.items if p.metadata.namespace in self.namespaces]
        return listed

    def _stream_args(self, core: client.CoreV1Api) -> tuple[Any, ...]:
        if not self.also:
            return (core.list_namespaced_pod, self.namespace)
        return (core.list_pod_for_all_namespaces,)

    def _run(self) -> None:
        core = client.CoreV1Api(self.api)
        while not self._stop.is_set():
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    *self._stream_args(core),
                    label_selector=self._selector,
                    resource_version=self._resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    obj = event["raw_object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if version:
                        self._resource_version = version
                    namespace = (obj.get("metadata") or {}).get("namespace")
                    witnessed = namespace in self.namespaces
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED") and witnessed:
                        self._apply(event["type"], obj)
                    if self._stop.is_set():
                        return
            except client.ApiException as exc:
                if exc.status == 410:
                    # Too old (e.g. a restarted apiserver's fresh watch cache): relist and apply
                    # the difference. Intermediate states in between are not seen, so this is
                    # recorded and only tolerated where the test says so (assert_history_clean).
                    self.relists.append(f"watch expired at {self._resource_version}")
                    self._relist(core)
                else:
                    time.sleep(0.5)
            except Exception:  # connection reset (e.g. an apiserver restart): resume from rv
                if self._stop.is_set():
                    return
                time.sleep(0.5)

    def _relist(self, core: client.CoreV1Api) -> None:
        try:
            listed = self._list(core)
        except Exception:  # still unreachable: the loop tries again
            time.sleep(0.5)
            return
        fresh = {p.metadata.name: self.api.sanitize_for_serialization(p) for p in listed.items}
        with self._lock:
            gone = [self._pods[n] for n in self._pods if n not in fresh]
        for state in gone:
            self._apply("DELETED", {"metadata": {"name": state.name, "annotations": {
                ANN_SESSION: state.session, ANN_ACCOUNT: state.account}}})  # fmt: skip
        for pod in fresh.values():
            self._apply("MODIFIED", pod)
        self._resource_version = listed.metadata.resource_version

    def _apply(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        state = PodState(
            name=meta.get("name", ""),
            session=annotations.get(ANN_SESSION, ""),
            account=annotations.get(ANN_ACCOUNT, ""),
            phase=(pod.get("status") or {}).get("phase", ""),
            live=kind != "DELETED" and pod_is_live(pod),
        )
        with self._lock:
            self.events.append((kind, state))
            if kind == "DELETED":
                self._pods.pop(state.name, None)
            else:
                self._pods[state.name] = state
            self._check(len(self.events))
        if self.on_event is not None:
            self.on_event(kind, state)

    def _check(self, index: int) -> None:
        live = [p for p in self._pods.values() if p.live]
        per_session = Counter(p.session for p in live)
        per_account = Counter(p.account for p in live)
        if per_session:
            self.peak_per_session = max(self.peak_per_session, max(per_session.values()))
        for account, count in per_account.items():
            self.peak_per_account[account] = max(self.peak_per_account.get(account, 0), count)
        for session, count in per_session.items():
            if count > 1:
                pods = sorted(p.name for p in live if p.session == session)
                self.violations.append(Violation(index, f"session {session}: live pods {pods}"))
        for account, count in per_account.items():
            limit = self.max_sessions.get(account)
            if limit is None or count > limit:
                pods = sorted(p.name for p in live if p.account == account)
                self.violations.append(
                    Violation(index, f"account {account}: {count} live pods > {limit}: {pods}")
                )

    # --- reading the current view ----------------------------------------------------------

    def live(self) -> dict[str, PodState]:
        with self._lock:
            return {n: p for n, p in self._pods.items() if p.live}

    def caught_up_with(self, pods: list[client.V1Pod]) -> bool:
        """True when this history's current view equals a fresh list (names and liveness):
        proof that the watch saw everything up to now."""
        fresh = {p.metadata.name: pod_is_live(self.api.sanitize_for_serialization(p)) for p in pods}
        with self._lock:
            mine = {n: p.live for n, p in self._pods.items()}
        return fresh == mine

    def summary(self) -> str:
        kinds = Counter(kind for kind, _ in self.events)
        return (
            f"{len(self.events)} pod events ({dict(kinds)}), peak live pods per session "
            f"{self.peak_per_session}, per account {dict(sorted(self.peak_per_account.items()))}"
        )
