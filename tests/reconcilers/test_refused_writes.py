"""Writes the API server refuses as they are (400, 403, 422): the pass records the refusal
where the server accepts it (StatusWriteRejected, or a condition naming the refused claim),
posts one Event per new refusal, counts it in headroom_writes_refused_total, writes the rest
of what it can, and comes back only after the longest backoff."""

from __future__ import annotations

import pytest
from tests.reconcilers.conftest import NS, World, completed, walled

from headroom.kube.client import KubeError, resource_of
from headroom.reconcilers import metrics

TOO_LONG = "status.lastOutcome.detail: Too long: may not be more than 4096 bytes"


def refused_count(resource: str, reason: str) -> float:
    return float(metrics.writes_refused.labels(resource, reason)._value.get())


def rejected(world: World, name: str, *, account: bool = False) -> dict:
    status = world.account_status(name) if account else world.status(name)
    found = [c for c in status.get("conditions", []) if c["type"] == "StatusWriteRejected"]
    return found[0] if found else {}


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/headroom.dev/v1alpha1/namespaces/a/agentsessions/s1/status",
         "agentsessions/status"),
        ("/api/v1/namespaces/a/pods", "pods"),
        ("/api/v1/namespaces/a/persistentvolumeclaims/w", "persistentvolumeclaims"),
        ("/api/v1/namespaces/a", "namespaces"),
        ("/apis/kopf.dev/v1/namespaces/a/kopfpeerings?x=1", "kopfpeerings"),
        ("/healthz", ""),
    ],
)  # fmt: skip
def test_the_resource_a_path_addresses(path: str, resource: str) -> None:
    assert resource_of(path) == resource


async def test_a_refused_session_status_write_leaves_the_condition_alone(world: World) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", completed(), code=0)
    world.kube.refuse_status_key[("agentsessions", "lastOutcome")] = KubeError(
        422, TOO_LONG, "Invalid"
    )
    before = refused_count("agentsessions/status", "Invalid")
    world.kube.writes.clear()
    await world.reconcile("s1")
    # The full write, refused; then the conditions with the refusal, accepted.
    patches = [p for verb, _, _, p in world.kube.writes if verb == "patch-status"]
    assert "lastOutcome" in patches[0] and list(patches[1]) == ["conditions"]
    condition = rejected(world, "s1")
    assert (condition["status"], condition["reason"]) == ("True", "Invalid")
    assert TOO_LONG in condition["message"]
    assert world.status("s1")["phase"] == "Running"  # nothing else of the pass landed
    assert world.condition("s1", "Ready")["reason"] == "Running"  # the others kept
    assert [e[:2] for e in world.events if e[1] == "StatusWriteRejected"] == [
        ("Warning", "StatusWriteRejected")
    ]
    assert refused_count("agentsessions/status", "Invalid") == before + 1
    # Nothing the pass decided was recorded, so none of its Events is posted.
    assert [e[1] for e in world.events if e[1] == "Completed"] == []
    due = world.rt.wakeups.pending(("session", NS, "s1"))
    assert due == world.clock.now + world.rt.settings.retry.max_backoff

    # The retry gets the same answer: counted again, but no second write and no second Event.
    world.kube.writes.clear()
    world.clock.advance(300)
    await world.reconcile("s1")
    assert [v for v in world.kube.verbs() if v[0] == "patch-status"] == [
        ("patch-status", "agentsessions", "s1")
    ]
    assert len([e for e in world.events if e[1] == "StatusWriteRejected"]) == 1
    assert refused_count("agentsessions/status", "Invalid") == before + 2

    # The refusal lifted: the write goes through and the condition goes with it.
    world.kube.refuse_status_key.clear()
    await world.reconcile("s1")
    assert world.status("s1")["phase"] == "Succeeded"
    assert rejected(world, "s1") == {}
    assert [e[1] for e in world.events if e[1] == "Completed"] == ["Completed"]


async def test_when_even_the_conditions_are_refused_the_condition_is_written_alone(
    world: World,
) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", completed(), code=0)
    refusal = KubeError(422, "denied by policy", "Invalid")
    calls = {"n": 0}
    original = world.kube.patch_session_status

    async def refuse_twice(
        namespace: str, name: str, patch: dict, resource_version: str = ""
    ) -> dict | None:
        calls["n"] += 1
        if calls["n"] <= 2:
            world.kube.writes.append(("patch-status", "agentsessions", name, dict(patch)))
            refusal.method, refusal.resource = "PATCH", "agentsessions/status"
            raise refusal
        return await original(namespace, name, patch, resource_version)

    world.kube.patch_session_status = refuse_twice  # type: ignore[method-assign]
    await world.reconcile("s1")
    conditions = world.status("s1")["conditions"]
    assert [c["type"] for c in conditions] == ["StatusWriteRejected"]
    assert "denied by policy" in conditions[0]["message"]


async def test_a_refused_account_signal_does_not_hold_the_session_back(world: World) -> None:
    """A wall whose evidence the server refuses on the account: the overlay still walls it,
    the refusal is on the account, and the session moves in the same pass."""
    world.account("alice", priority=10)
    world.account("bob")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", walled(), code=75)
    world.kube.refuse_status_key[("claudeaccounts", "lastSignal")] = KubeError(
        422, "status.lastSignal.evidence: Invalid value", "Invalid"
    )
    before = refused_count("claudeaccounts/status", "Invalid")
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["account"], status["attempt"]) == ("Running", "bob", 2)
    assert rejected(world, "alice", account=True)["reason"] == "Invalid"
    assert "lastSignal" not in world.account_status("alice")
    assert refused_count("claudeaccounts/status", "Invalid") == before + 1


async def test_a_refused_account_status_write_is_recorded_and_retried_later(
    world: World,
) -> None:
    world.secret("alice", token="t0k")
    world.new_account("alice")
    world.kube.refuse_status_key[("claudeaccounts", "phase")] = KubeError(
        403, "denied by a policy", "Forbidden"
    )
    before = refused_count("claudeaccounts/status", "Forbidden")
    await world.reconcile_account("alice")
    await world.reconcile_account("alice")  # the retry: the same refusal, counted again
    assert rejected(world, "alice", account=True)["reason"] == "Forbidden"
    # The phase change was not recorded: no Event says it happened, however many retries.
    assert [e for e in world.events if e[1] == "Available"] == []
    assert len([e for e in world.events if e[1] == "StatusWriteRejected"]) == 1
    assert refused_count("claudeaccounts/status", "Forbidden") == before + 2
    due = world.rt.wakeups.pending(("account", NS, "alice"))
    assert due == world.clock.now + world.rt.settings.retry.max_backoff
    world.kube.refuse_status_key.clear()
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"
    assert rejected(world, "alice", account=True) == {}
    assert [e[1] for e in world.events if e[1] == "Available"] == ["Available"]


async def test_a_refused_owner_reference_on_the_predecessors_claim_reaches_status(
    world: World,
) -> None:
    """continueFrom: adding this session as an owner of the predecessor's workspace is
    refused (OwnerReferencesPermissionEnforcement without the right, a policy): status says
    so, with the server's words, and the pass comes back after the longest backoff."""
    world.account("alice", max_sessions=2)
    world.session("first")
    await world.reconcile("first")
    world.end_pod("first-1", completed(), code=0)
    await world.reconcile("first")
    refusal = "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't"
    world.kube.refuse_patch["persistentvolumeclaims"] = KubeError(422, refusal, "Invalid")
    before = refused_count("persistentvolumeclaims", "Invalid")
    world.session("second", continueFrom={"name": "first"})
    await world.reconcile("second")
    for kind in ("Scheduled", "Ready"):
        condition = world.condition("second", kind)
        assert (condition["status"], condition["reason"]) == ("False", "WorkspaceClaimRefused")
        assert refusal in condition["message"] and "first-workspace" in condition["message"]
    assert world.status("second")["phase"] == "Pending"
    assert world.kube.obj("pods", "second-1") is None
    assert world.events[-1][:2] == ("Warning", "WorkspaceClaimRefused")
    assert refused_count("persistentvolumeclaims", "Invalid") == before + 1
    due = world.rt.wakeups.pending(("session", NS, "second"))
    assert due == world.clock.now + world.rt.settings.retry.max_backoff
    del world.kube.refuse_patch["persistentvolumeclaims"]
    await world.reconcile("second")
    assert world.status("second")["phase"] == "Running"


async def test_a_refused_workspace_claim_create_reaches_status(world: World) -> None:
    world.kube.refuse_create["persistentvolumeclaims"] = KubeError(
        403, 'exceeded quota: "claims", requested: persistentvolumeclaims=1', "Forbidden"
    )
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    condition = world.condition("s1", "Scheduled")
    assert (condition["reason"], world.status("s1")["phase"]) == (
        "WorkspaceClaimRefused",
        "Pending",
    )
    assert "exceeded quota" in condition["message"]
    assert world.kube.obj("pods", "s1-1") is None
    assert world.rt.ledger.active((NS, "alice")) == 0  # the slot is not held
