"""Reconciler unit tests: the real reconcilers against an in-memory Kube, a clock the test
moves, and an Event recorder. No API server: every write is in `FakeKube.writes`, in order."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from headroom.contract.termination import Outcome, TerminationMessage, encode
from headroom.kube.client import Kube, KubeConflict, KubeError, KubeNotFound
from headroom.reconcilers.roster import account_from_body
from headroom.reconcilers.runtime import Indexes, LivePod, Runtime, Settings

JSON = dict[str, Any]
NS = "team"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def merge(target: JSON, patch: JSON) -> JSON:
    """RFC 7386 merge patch, as the API server applies a status patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def account_plural(namespace: str) -> str:
    """Accounts are keyed (namespace, name); "" is the cluster-scoped kind."""
    return "claudeaccounts" if namespace else "clusterclaudeaccounts"


@dataclass
class FakeKube:
    """The calls the reconcilers make, kept in a dict of objects. A write is recorded as
    (verb, plural, name, payload) before it takes effect."""

    objects: dict[tuple[str, str], JSON] = field(default_factory=dict)
    writes: list[tuple[str, str, str, Any]] = field(default_factory=list)
    version: int = 0
    # plural -> the error the API server answers every create of that kind with
    refuse_create: dict[str, KubeError] = field(default_factory=dict)
    # the error every session status patch is answered with
    refuse_session_status: KubeError | None = None
    # (plural, status key) -> the error a status patch carrying that key is answered with,
    # as an API server answers a value its schema or an admission policy refuses
    refuse_status_key: dict[tuple[str, str], KubeError] = field(default_factory=dict)
    # plural -> the error every patch of that kind is answered with
    refuse_patch: dict[str, KubeError] = field(default_factory=dict)

    def put(self, plural: str, obj: JSON) -> JSON:
        self.version += 1
        obj.setdefault("metadata", {}).setdefault("uid", f"uid-{obj['metadata']['name']}")
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(plural, obj["metadata"]["name"])] = obj
        return obj

    def obj(self, plural: str, name: str) -> JSON | None:
        return self.objects.get((plural, name))

    async def get_session(self, namespace: str, name: str) -> JSON | None:
        return copy.deepcopy(self.obj("agentsessions", name))

    async def get(self, namespace: str, plural: str, name: str) -> JSON | None:
        return copy.deepcopy(self.obj(plural, name))

    async def get_account(self, namespace: str, name: str) -> JSON | None:
        return copy.deepcopy(self.obj(account_plural(namespace), name))

    async def patch_session_status(
        self, namespace: str, name: str, patch: JSON, resource_version: str = ""
    ) -> JSON | None:
        self.writes.append(("patch-status", "agentsessions", name, copy.deepcopy(patch)))
        if self.refuse_session_status is not None:
            raise _asked(self.refuse_session_status, "PATCH", "agentsessions/status")
        self._refuse_keys("agentsessions", patch)
        body = self.obj("agentsessions", name)
        if body is None:
            return None
        if resource_version and body["metadata"]["resourceVersion"] != resource_version:
            error = KubeConflict(409, "the object has been modified", "Conflict")
            raise _asked(error, "PATCH", "agentsessions/status")
        merge(body.setdefault("status", {}), patch)
        return copy.deepcopy(self.put("agentsessions", body))

    async def patch_account_status(
        self, namespace: str, name: str, patch: JSON, resource_version: str = ""
    ) -> JSON | None:
        plural = account_plural(namespace)
        self.writes.append(("patch-status", plural, name, copy.deepcopy(patch)))
        self._refuse_keys(plural, patch)
        body = self.obj(plural, name)
        if body is None:
            return None
        if resource_version and body["metadata"]["resourceVersion"] != resource_version:
            error = KubeConflict(409, "the object has been modified", "Conflict")
            raise _asked(error, "PATCH", f"{plural}/status")
        merge(body.setdefault("status", {}), patch)
        return copy.deepcopy(self.put(plural, body))

    def _refuse_keys(self, plural: str, patch: JSON) -> None:
        for (kind, key), error in self.refuse_status_key.items():
            if kind == plural and key in patch:
                raise _asked(error, "PATCH", f"{plural}/status")

    async def create(self, namespace: str, plural: str, manifest: JSON) -> bool:
        name = manifest["metadata"]["name"]
        self.writes.append(("create", plural, name, copy.deepcopy(manifest)))
        if plural in self.refuse_create:
            raise _asked(self.refuse_create[plural], "POST", plural)
        if self.obj(plural, name) is not None:
            return False
        self.put(plural, copy.deepcopy(manifest))
        return True

    async def patch(self, namespace: str, plural: str, name: str, patch: JSON) -> JSON | None:
        self.writes.append(("patch", plural, name, copy.deepcopy(patch)))
        if plural in self.refuse_patch:
            raise _asked(self.refuse_patch[plural], "PATCH", plural)
        body = self.obj(plural, name)
        if body is None:
            raise KubeNotFound(404, f"{plural} {name} not found", "NotFound")
        return merge(body, patch)

    async def replace_or_create(self, namespace: str, plural: str, manifest: JSON) -> None:
        name = manifest["metadata"]["name"]
        self.writes.append(("replace-or-create", plural, name, copy.deepcopy(manifest)))
        self.put(plural, copy.deepcopy(manifest))

    async def delete(self, namespace: str, plural: str, name: str) -> None:
        self.writes.append(("delete", plural, name, None))
        body = self.obj(plural, name)
        if body is not None:
            body["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"

    async def delete_session(self, namespace: str, name: str) -> None:
        self.writes.append(("delete", "agentsessions", name, None))
        self.objects.pop(("agentsessions", name), None)

    def verbs(self) -> list[tuple[str, str, str]]:
        return [(verb, plural, name) for verb, plural, name, _ in self.writes]


def _asked(error: KubeError, method: str, resource: str) -> KubeError:
    """The error as Kube.request raises it: naming the request it answers."""
    error.method, error.resource = method, resource
    return error


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    """One namespace: accounts in the roster index, sessions and pods in the fake Kube."""

    kube: FakeKube
    clock: Clock
    rt: Runtime
    events: list[tuple[str, str, str]]
    accounts: dict[str, list[Any]]
    pods: dict[tuple[str, str], list[LivePod]]
    namespaces: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def account(self, name: str, max_sessions: int = 1, priority: int = 0, **status: Any) -> None:
        body = {
            "metadata": {"namespace": NS, "name": name, "uid": f"uid-{name}"},
            "spec": {
                "credentials": {"type": "OAuthToken", "secretRef": {"name": name}},
                "maxSessions": max_sessions,
                "priority": priority,
            },
            "status": {
                "credentialsHash": "sha256:1",
                "conditions": [{"type": "CredentialsValid", "status": "True"}],
                **status,
            },
        }
        self.kube.put("claudeaccounts", body)
        others = [a for a in self.accounts.get(NS, []) if a.name != name]
        self.accounts[NS] = [*others, account_from_body(body)]

    def cluster_account(
        self,
        name: str,
        max_sessions: int = 1,
        admits: list[str] | None = None,
        priority: int = 0,
        **status: Any,
    ) -> JSON:
        """A verified ClusterClaudeAccount admitting `admits` (default: this namespace)."""
        body = {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "ClusterClaudeAccount",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {
                "credentials": {"type": "OAuthToken", "secretRef": {"name": name}},
                "maxSessions": max_sessions,
                "priority": priority,
                "allowedNamespaces": {"names": [NS] if admits is None else admits},
            },
            "status": {
                "credentialsHash": "sha256:1",
                "conditions": [{"type": "CredentialsValid", "status": "True"}],
                **status,
            },
        }
        return self.cluster_account_from(body)

    def cluster_account_from(self, body: JSON) -> JSON:
        """Store a ClusterClaudeAccount body and index it as kopf's watch would."""
        self.kube.put("clusterclaudeaccounts", body)
        name = body["metadata"]["name"]
        others = [a for a in self.accounts.get("", []) if a.name != name]
        self.accounts[""] = [*others, account_from_body(body)]
        return body

    def secret(self, name: str, **data: str) -> JSON:
        """A Secret; values in clear, stored base64-encoded as the API server keeps them."""
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        secret = self.kube.put(
            "secrets", {"metadata": {"namespace": NS, "name": name}, "data": encoded}
        )
        # What the Secret's watch event tells the operator (its handler or its own watch).
        self.rt.secrets.seen(NS, name, secret["metadata"]["resourceVersion"])
        return secret

    def new_account(self, name: str, secret: str | None = None, **spec: Any) -> JSON:
        """A ClaudeAccount as a user creates it: no status until the account reconciler runs."""
        body = {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "ClaudeAccount",
            "metadata": {"namespace": NS, "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {
                "credentials": {"type": "OAuthToken", "secretRef": {"name": secret or name}},
                **spec,
            },
        }
        self.kube.put("claudeaccounts", body)
        self.index_accounts()
        return body

    def index_accounts(self) -> None:
        """The roster index as kopf's watch leaves it: every account as last written."""
        bodies = [b for (plural, _), b in self.kube.objects.items() if plural == "claudeaccounts"]
        self.accounts[NS] = [account_from_body(b) for b in bodies]

    def account_status(self, name: str) -> JSON:
        return cast(JSON, (self.kube.obj("claudeaccounts", name) or {}).get("status") or {})

    def account_condition(self, name: str, kind: str) -> JSON:
        found = [c for c in self.account_status(name).get("conditions", []) if c["type"] == kind]
        return found[0] if found else {}

    async def reconcile_account(self, name: str) -> None:
        from headroom.reconcilers import account

        await account.reconcile(self.rt, NS, name)
        self.index_accounts()

    def session(self, name: str, **spec: Any) -> JSON:
        body = {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "AgentSession",
            "metadata": {"namespace": NS, "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"prompt": "Fix the flaky test", **spec},
        }
        return self.kube.put("agentsessions", body)

    def status(self, name: str) -> JSON:
        return cast(JSON, (self.kube.obj("agentsessions", name) or {}).get("status") or {})

    def condition(self, name: str, kind: str) -> JSON:
        found = [c for c in self.status(name).get("conditions", []) if c["type"] == kind]
        return found[0] if found else {}

    async def reconcile(self, name: str) -> None:
        from headroom.reconcilers import session

        await session.reconcile(self.rt, NS, name)

    def pod(self, name: str) -> JSON:
        found = self.kube.obj("pods", name)
        assert found is not None, f"no pod {name}"
        return found

    def run_pod(self, name: str, started: datetime | None = None) -> None:
        """The kubelet started the agent container."""
        when = (started or self.clock.now).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.pod(name)["status"] = {
            "phase": "Running",
            "containerStatuses": [{"name": "agent", "state": {"running": {"startedAt": when}}}],
        }

    def end_pod(
        self, name: str, message: TerminationMessage, code: int, seconds: float = 30
    ) -> None:
        """The agent container ended as the runner says, `seconds` after it started."""
        end = self.clock.now
        start = end - timedelta(seconds=seconds)
        self.pod(name)["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": "agent",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": "Completed" if code == 0 else "Error",
                            "message": encode(message),
                            "startedAt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "finishedAt": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        }
                    },
                }
            ],
        }
        self.pods.pop((NS, name.rsplit("-", 1)[0]), None)

    def agent_env(self, pod: str) -> dict[str, Any]:
        (container,) = self.pod(pod)["spec"]["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    def claude_options(self, pod: str) -> JSON:
        return cast(JSON, json.loads(self.agent_env(pod).get("HEADROOM_CLAUDE") or "{}"))


SESSION_ID = "6f1c0000-0000-4000-8000-000000000000"


def completed(**fields: Any) -> TerminationMessage:
    return TerminationMessage(
        Outcome.COMPLETED, transcript=True, detail="The run finished.", **fields
    )


def walled(window: str = "five_hour", resets_in: float = 3600, **fields: Any) -> TerminationMessage:
    reset = (START + timedelta(seconds=resets_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return TerminationMessage(
        Outcome.WALLED,
        window=window,
        resets_at=reset,
        transcript=True,
        evidence="rejected",
        **fields,
    )


def failed(detail: str = "boom", **fields: Any) -> TerminationMessage:
    return TerminationMessage(Outcome.FAILED, detail=detail, transcript=True, **fields)


@pytest.fixture
def world() -> World:
    kube = FakeKube()
    clock = Clock()
    events: list[tuple[str, str, str]] = []
    rt = Runtime(
        cast(Kube, kube),
        Settings(),
        clock=clock,
        recorder=lambda body, kind, reason, message: events.append((kind, reason, message)),
    )
    accounts: dict[str, list[Any]] = {}
    pods: dict[tuple[str, str], list[LivePod]] = {}
    namespaces: dict[str, list[dict[str, str]]] = {}
    claims: dict[tuple[str, str], list[bool]] = {}  # empty: every claim is read from the fake
    rt.attach(Indexes(accounts, accounts, namespaces, pods, claims))
    return World(kube, clock, rt, events, accounts, pods, namespaces)
