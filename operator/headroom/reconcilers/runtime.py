"""The operator's shared in-memory state, built once at start-up and handed to reconcilers."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import kopf

from headroom.anthropic.usage import DEFAULT_BASE_URL as DEFAULT_USAGE_BASE_URL
from headroom.contract.scrub import scrub
from headroom.core.accounts import Account, AccountKey, ref_key
from headroom.core.ledger import Ledger
from headroom.core.session import RetryPolicy
from headroom.kube.agent_pod import PodSettings
from headroom.kube.cache import ObjectCache, SecretCache, slim_pod, without_managed_fields
from headroom.kube.client import Kube, KubeError
from headroom.reconcilers import pod_state
from headroom.reconcilers.clock import Clock, system_clock
from headroom.reconcilers.roster import Roster
from headroom.reconcilers.wakeups import Key, Wakeups

log = logging.getLogger("headroom")
# An Event's message stays under the 1 KiB events.k8s.io/v1 allows for a note.
EVENT_MESSAGE_CHARS = 1000
# (object, type, reason, message): where Events go; kopf's poster in the operator.
Recorder = Callable[[Mapping[str, Any], str, str, str], None]


class Reconcile(Protocol):
    """What a wake-up (or a watch event) of a session or an account runs. `watched`: started
    by a watch event, so the object as the watches delivered it will do."""

    def __call__(
        self, rt: Runtime, namespace: str, name: str, *, watched: bool = False
    ) -> Awaitable[None]: ...


# A job that runs for the operator's lifetime (wake-ups, status flushing, metrics export).
BackgroundJob = Callable[["Runtime"], Coroutine[Any, Any, None]]


def kopf_recorder(body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    # kopf.event reads only apiVersion, kind and metadata, from any mapping; its signature
    # names kopf's own Body wrapper, for which a plain object dict does at runtime.
    kopf.event(cast(kopf.Body, dict(body)), type=kind, reason=reason, message=message)


@dataclass(frozen=True)
class Settings:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pods: PodSettings = field(default_factory=PodSettings)
    drill_duration: timedelta = timedelta(minutes=2)
    # Debounce for account status writes that only move counters (activeSessions).
    account_status_delay: float = 1.0
    # Where the credential Secrets of ClusterClaudeAccounts live (the operator's namespace).
    cluster_account_namespace: str = "headroom-system"
    # The namespaces served (names or patterns such as team-*); empty: all of them.
    namespaces: tuple[str, ...] = ()
    # Live usage: how often a busy account's plan usage is read (0: never), and from where.
    usage_poll_interval: timedelta = timedelta(0)
    usage_base_url: str = DEFAULT_USAGE_BASE_URL


@dataclass(frozen=True)
class ClusterCredential:
    """A cluster account's credential as last read from its Secret: what the per-session
    runtime Secrets in the sessions' namespaces are written from. Never logged."""

    digest: str
    key: str
    value_b64: str = field(repr=False)


@dataclass
class Drill:
    """A drill under way on one account: how many of its sessions must move, and how many
    have (the account reconciler reports both in status.drill)."""

    started: datetime
    sessions: int
    moved: int = 0
    last_move: datetime | None = None


@dataclass(frozen=True)
class LivePod:
    """What the pods index keeps per agent pod that is still alive."""

    name: str
    account: str
    attempt: int


# kopf's live indexes (kopf.Index is a Mapping of key -> kopf.Store, a Collection).
AccountsIndex = Mapping[str, Iterable[Account]]
PodsIndex = Mapping[tuple[str, str], Iterable[LivePod]]
NamespacesIndex = Mapping[str, Iterable[Mapping[str, str]]]
# (namespace, claim) -> whether the workspace claim is still usable (not being deleted)
ClaimsIndex = Mapping[tuple[str, str], Iterable[bool]]


@dataclass(frozen=True)
class Indexes:
    """kopf's live indexes, as the runtime reads them."""

    accounts: AccountsIndex
    cluster_accounts: AccountsIndex
    namespaces: NamespacesIndex
    pods: PodsIndex
    claims: ClaimsIndex


class Runtime:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        clock: Clock = system_clock,
        recorder: Recorder = kopf_recorder,
    ) -> None:
        self.kube = kube
        self.settings = settings
        # Every reconciler, wake-up and timer reads the time here, so tests choose it.
        self.clock = clock
        self.recorder = recorder
        self.roster = Roster()
        self.ledger = Ledger()
        self.wakeups = Wakeups(self._wake, clock)
        self._pods_index: PodsIndex | None = None
        self._namespaces_index: NamespacesIndex | None = None
        self._claims_index: ClaimsIndex | None = None
        # Sessions and agent pods as the watches (and the passes' own writes) last showed
        # them: a pass reads its session and its pod here instead of asking the API server.
        self.sessions = ObjectCache(without_managed_fields)
        self.pods = ObjectCache(slim_pod)
        self.accounts = ObjectCache(without_managed_fields)  # both kinds; namespace "" cluster
        self.secrets = SecretCache()
        self._ledger_seeded = False
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self.placement_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.waiting: defaultdict[str, dict[str, datetime]] = defaultdict(dict)
        # Set at start-up to the reconcilers' entry points (None in unit tests: no wake-ups).
        self.reconcile_session: Reconcile | None = None
        self.reconcile_account: Reconcile | None = None
        # Accounts whose counters moved, with when they first and last did (see due_accounts).
        self.dirty_accounts: dict[AccountKey, tuple[datetime, datetime]] = {}
        # (namespace, secret name) -> accounts that read it, to react to Secret changes
        self.secret_refs: defaultdict[tuple[str, str], set[AccountKey]] = defaultdict(set)
        self.account_uids: dict[tuple[str, str], str] = {}
        self.cluster_credentials: dict[str, ClusterCredential] = {}
        # (namespace, session) -> (account ref, credential digest) of its staged copy
        self.staged_credentials: dict[tuple[str, str], tuple[str, str]] = {}
        # drills under way, by (namespace, account)
        self.drills: dict[tuple[str, str], Drill] = {}
        self.session_phases: dict[tuple[str, str], str] = {}
        # Attempt number per session as last seen on the watch: lets pod events of superseded
        # attempts (the old pod's deletion after a swap) skip a useless reconcile pass.
        self.session_attempts: dict[tuple[str, str], int] = {}
        # (resourceVersion, generation read) of each session's last status write by a pass:
        # the watch event that write causes needs no pass of its own (see session_event).
        self.own_session_writes: dict[tuple[str, str], tuple[str, int]] = {}
        # The same for accounts: (resourceVersion, generation and drill annotation the writing
        # reconcile read). Only reconciles write it; a signal write (a wall) is reconciled at
        # once, so the account's phase says Walled as soon as its sessions have moved.
        self.own_account_writes: dict[tuple[str, str], tuple[str, int, str | None]] = {}
        self.background_jobs: list[BackgroundJob] = []
        # Set while this replica may act. kopf pauses only its watch streams when another
        # replica leads (peering); the operator's own timers wait on this instead.
        self.active = asyncio.Event()
        self.active.set()
        # Set once the agent pods have been listed (reconcilers/pod_watch): before that the
        # ledger would not know every live pod. Set from the start where no watch runs.
        self.pods_synced = asyncio.Event()
        self.pods_synced.set()
        self._background: set[asyncio.Task[None]] = set()

    # --- background tasks ---------------------------------------------------------------

    def start_background(self) -> None:
        if self._background or not self.background_jobs:
            return
        loop = asyncio.get_running_loop()
        self._background = {loop.create_task(job(self)) for job in self.background_jobs}

    def stop_background(self) -> None:
        for task in self._background:
            task.cancel()

    # --- indexes handed over by kopf ---------------------------------------------------

    def attach(self, indexes: Indexes) -> None:
        if not self.roster.attached:
            self.roster.attach(indexes.accounts, indexes.cluster_accounts)
        if self._pods_index is None:
            self._pods_index = indexes.pods
        if self._namespaces_index is None:
            self._namespaces_index = indexes.namespaces
        if self._claims_index is None:
            self._claims_index = indexes.claims

    def known_namespaces(self) -> list[str]:
        """Every namespace the namespaces watch has delivered."""
        return list(self._namespaces_index or {})

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """A namespace's labels as the watch last delivered them (empty if not seen)."""
        found = (self._namespaces_index or {}).get(namespace) or ()
        return next(iter(found), {})

    def seed_ledger(self) -> None:
        """Rebuild who holds which account from live pods: after a restart the ledger is
        exactly what the cluster says, so maxSessions holds across restarts."""
        if self._ledger_seeded or self._pods_index is None:
            return
        for (namespace, session), pods in self._pods_index.items():
            newest = max(pods, key=lambda p: p.attempt, default=None)
            if newest is not None:
                self.ledger.assign((namespace, session), ref_key(namespace, newest.account))
        self._ledger_seeded = True

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An agent pod that has ended (or is being deleted) as its watch delivered it: that
        never changes back. Any other pod as the API server has it now: a pod the cache holds
        as running may have gone while a watch was down, and a pod missing from the cache may
        not have been delivered yet."""
        cached = self.pods.get(namespace, name)
        if cached is not None and pod_state.settled(cached):
            return cached
        return await self.kube.get(namespace, "pods", name)

    async def claim_usable(self, namespace: str, name: str) -> bool:
        """Whether a workspace claim exists and is not being deleted (its index, else a GET:
        claims the operator did not make are not in the index)."""
        known = list((self._claims_index or {}).get((namespace, name)) or ())
        if known:
            return all(known)
        found = await self.kube.get(namespace, "persistentvolumeclaims", name)
        return found is not None and not (found.get("metadata") or {}).get("deletionTimestamp")

    def live_pods(self, namespace: str, session: str) -> list[LivePod]:
        if self._pods_index is None:
            return []
        return list(self._pods_index.get((namespace, session), []))

    # --- serialization -----------------------------------------------------------------

    def lock(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((kind, namespace, name), asyncio.Lock())

    def forget_lock(self, kind: str, namespace: str, name: str) -> None:
        self._locks.pop((kind, namespace, name), None)

    # --- wake-ups ----------------------------------------------------------------------

    async def _wake(self, key: Key) -> None:
        kind, namespace, name = key
        await self.active.wait()
        if kind == "session" and self.reconcile_session is not None:
            await self.reconcile_session(self, namespace, name)
        elif kind == "account" and self.reconcile_account is not None:
            await self.reconcile_account(self, namespace, name)

    def wake_waiting(self, namespace: str, slots: int | None = None) -> None:
        """Capacity appeared in `namespace` ("": on a cluster account, for any namespace):
        wake the longest-waiting sessions, as many as there are free slots (not the whole
        queue: no thundering herd)."""
        queue = [
            (since, ns, name)
            for ns, waiting in self.waiting.items()
            if ns == namespace or not namespace
            for name, since in waiting.items()
        ]
        if not queue:
            return
        if slots is None:
            accounts = self.roster.for_sessions_of(namespace) if namespace else []
            accounts = accounts or self.roster.accounts("")
            load = self.ledger.load(accounts)
            slots = sum(max(0, a.max_sessions - load[a.ref]) for a in accounts)
        now = self.clock()
        for _since, ns, name in sorted(queue)[: max(slots, 0)]:
            self.wakeups.at(("session", ns, name), now)

    def placement_lock(self, namespace: str, cluster: bool) -> PlacementLock:
        """The critical section of one placement. A namespace's lock covers its ClaudeAccounts;
        a session that may use cluster accounts also takes the one cluster-wide lock (always
        after its namespace's, so two placements never wait on each other in a circle)."""
        return PlacementLock(
            [self.placement_locks[namespace], *([self.placement_locks[""]] if cluster else [])]
        )

    def mark_account_dirty(self, namespace: str, name: str) -> None:
        now = self.clock()
        first, _ = self.dirty_accounts.get((namespace, name), (now, now))
        self.dirty_accounts[(namespace, name)] = (first, now)

    def due_accounts(self) -> list[AccountKey]:
        """The accounts whose status to refresh now, taken off the list: those whose counters
        have not moved for `account_status_delay`, or have kept moving for five times that.
        A wave of placements is then one write per account, not one per placement."""
        now = self.clock()
        quiet = timedelta(seconds=self.settings.account_status_delay)
        due = [
            key
            for key, (first, last) in self.dirty_accounts.items()
            if now - last >= quiet or now - first >= 5 * quiet
        ]
        for key in due:
            del self.dirty_accounts[key]
        return sorted(due)

    # --- records -----------------------------------------------------------------------

    def _event_home(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """An Event lives in a namespace; a cluster object's go to the operator's own, where
        its RBAC allows them, whatever namespace the API client would pick by default."""
        meta = body.get("metadata") or {}
        if meta.get("namespace"):
            return body
        home = {**meta, "namespace": self.settings.cluster_account_namespace}
        return {**body, "metadata": home}

    def event(
        self, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False
    ) -> None:
        """A Kubernetes Event and a structured log line, with secrets scrubbed from both."""
        text = scrub(message)[:EVENT_MESSAGE_CHARS]
        self.recorder(self._event_home(body), "Warning" if warning else "Normal", reason, text)
        meta = body.get("metadata", {})
        log.info(
            "%s %s/%s: %s",
            reason,
            meta.get("namespace"),
            meta.get("name"),
            text,
            extra={"reason": reason, "object": meta.get("name"), "kind": body.get("kind")},
        )


class PlacementLock:
    """Several asyncio locks taken in the given order and released in reverse."""

    def __init__(self, locks: list[asyncio.Lock]) -> None:
        self._locks = locks

    async def __aenter__(self) -> None:
        taken: list[asyncio.Lock] = []
        try:
            for lock in self._locks:
                await lock.acquire()
                taken.append(lock)
        except BaseException:  # cancelled while waiting: give back what was taken
            for lock in reversed(taken):
                lock.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        for lock in reversed(self._locks):
            lock.release()


def retry_delay(rt: Runtime, exc: KubeError) -> timedelta:
    """A request refused as it is gets the same answer on the next try: the pass comes back
    after the longest backoff (an administrator may change RBAC, a quota, a policy), not in
    a tight loop. Anything else (a conflict, throttling, a 5xx, no answer) may pass soon."""
    return rt.settings.retry.max_backoff if exc.refused else rt.settings.retry.base_backoff / 5
