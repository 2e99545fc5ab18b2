"""Sessions on ClusterClaudeAccounts, against the fake API: the scope a session asks for,
the namespaces an account admits, the session's own copy of the credential, one count of
sessions across namespaces, and duplicate credentials."""

from __future__ import annotations

import base64

from tests.reconcilers.conftest import NS, World, walled

from headroom.contract import pod as contract
from headroom.kube.agent_pod import SOURCE_VOLUME
from headroom.reconcilers.runtime import ClusterCredential

TOKEN = "cluster-token-for-tests"
SHARED_REF = "ClusterClaudeAccount/shared"
COPY = "headroom-credential-s1"


def credential(world: World, name: str = "shared") -> None:
    """The cluster account's Secret as its reconciler last read it."""
    value = base64.b64encode(TOKEN.encode()).decode()
    world.rt.cluster_credentials[name] = ClusterCredential("sha256:1", "token", value)


async def test_a_cluster_scoped_session_runs_on_the_cluster_account(world: World) -> None:
    world.account("alice")  # a ClaudeAccount of the namespace: not in the session's scope
    world.cluster_account("shared")
    credential(world)
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["account"]) == ("Running", SHARED_REF)
    pod = world.pod(status["podName"])
    meta = pod["metadata"]
    assert meta["annotations"][contract.ANN_ACCOUNT] == SHARED_REF
    assert meta["labels"][contract.LABEL_CLUSTER_ACCOUNT] == "shared"
    assert contract.LABEL_ACCOUNT not in meta["labels"]
    # The pod mounts the session's own copy, which holds one key and goes with the session.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[SOURCE_VOLUME]["secret"]["secretName"] == COPY
    copy = world.kube.obj("secrets", COPY)
    assert copy is not None
    assert copy["data"] == {"token": base64.b64encode(TOKEN.encode()).decode()}
    (owner,) = copy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("AgentSession", "s1")
    assert copy["metadata"]["annotations"][contract.ANN_ACCOUNT] == SHARED_REF
    assert world.rt.ledger.active(("", "shared")) == 1


async def test_the_default_scope_never_reaches_a_cluster_account(world: World) -> None:
    world.cluster_account("shared")
    world.session("s1")
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Waiting"
    assert "no ClaudeAccount matches" in status["waitingMessage"]
    assert world.kube.obj("secrets", COPY) is None


async def test_all_ranks_both_kinds_together(world: World) -> None:
    world.account("alice", priority=0)
    world.cluster_account("shared", priority=5)
    credential(world)
    world.session("s1", accountScope="All")
    await world.reconcile("s1")
    assert world.status("s1")["account"] == SHARED_REF


async def test_a_namespace_the_account_does_not_admit_waits_and_is_told_why(world: World) -> None:
    world.cluster_account("shared", admits=["someone-else"])
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Waiting"
    assert f"{SHARED_REF} does not admit namespace {NS}" in status["waitingMessage"]
    assert world.kube.obj("secrets", COPY) is None


async def test_a_label_selector_admits_by_the_namespaces_labels(world: World) -> None:
    body = world.cluster_account("shared", admits=[])
    body["spec"]["allowedNamespaces"]["selector"] = {"matchLabels": {"pool": "shared"}}
    world.cluster_account_from(body)
    credential(world)
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    assert world.status("s1")["phase"] == "Waiting"
    world.namespaces[NS] = [{"pool": "shared"}]
    await world.reconcile("s1")
    assert world.status("s1")["account"] == SHARED_REF


async def test_the_copy_is_written_once_per_account_and_credential(world: World) -> None:
    world.cluster_account("shared", max_sessions=1)
    world.cluster_account("spare", max_sessions=1)
    credential(world)
    credential(world, "spare")
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    first = dict(world.status("s1"))
    writes = [w for w in world.kube.verbs() if w[1] == "secrets"]
    assert writes == [("replace-or-create", "secrets", COPY)]
    # A wall moves it to the other cluster account: the copy is rewritten for that one.
    world.end_pod(first["podName"], walled(), code=75)
    await world.reconcile("s1")
    second = world.status("s1")
    assert second["attempt"] == 2 and second["account"] != first["account"]
    writes = [w for w in world.kube.verbs() if w[1] == "secrets"]
    assert writes == [("replace-or-create", "secrets", COPY)] * 2
    copy = world.kube.obj("secrets", COPY)
    assert copy is not None
    assert copy["metadata"]["annotations"][contract.ANN_ACCOUNT] == second["account"]


async def test_a_finished_session_deletes_its_copy(world: World) -> None:
    from tests.reconcilers.conftest import completed

    world.cluster_account("shared")
    credential(world)
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    world.end_pod(world.status("s1")["podName"], completed(), code=0)
    await world.reconcile("s1")
    assert world.status("s1")["phase"] == "Succeeded"
    assert ("delete", "secrets", COPY) in world.kube.verbs()
    assert (NS, "s1") not in world.rt.staged_credentials


async def test_one_count_across_namespaces(world: World) -> None:
    world.cluster_account("shared", max_sessions=1, admits=[NS, "other-team"])
    credential(world)
    world.rt.ledger.assign(("other-team", "theirs"), ("", "shared"))  # placed from elsewhere
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Waiting"
    assert f"{SHARED_REF} is full (1/1)" in status["waitingMessage"]


async def test_an_unreadable_cluster_credential_is_a_condition_not_a_crash(world: World) -> None:
    world.cluster_account("shared")  # no credential known, and its Secret is missing
    world.session("s1", accountScope="Cluster")
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Pending"
    scheduled = world.condition("s1", "Scheduled")
    assert scheduled["reason"] == "CredentialUnavailable"
    assert "was not found" in scheduled["message"]
    assert world.rt.ledger.active(("", "shared")) == 0
    assert not [w for w in world.kube.verbs() if w[1] == "pods"]


# --- the account reconciler: a cluster account's credential, and duplicates -------------------


async def reconcile_cluster(world: World, name: str) -> None:
    from headroom.reconcilers import account

    await account.reconcile(world.rt, "", name)
    body = world.kube.obj("clusterclaudeaccounts", name)
    assert body is not None
    world.cluster_account_from(body)


def new_cluster_account(world: World, name: str, created: str) -> None:
    world.cluster_account_from(
        {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "ClusterClaudeAccount",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1,
                         "creationTimestamp": created},
            "spec": {
                "credentials": {"type": "OAuthToken", "secretRef": {"name": f"{name}-secret"}},
                "allowedNamespaces": {"names": [NS]},
            },
        }
    )  # fmt: skip


async def test_a_cluster_account_reads_its_secret_and_writes_no_runtime_secret(
    world: World,
) -> None:
    world.secret("shared-secret", token=TOKEN)
    new_cluster_account(world, "shared", "2026-12-01T10:00:00Z")
    await reconcile_cluster(world, "shared")
    status = world.kube.obj("clusterclaudeaccounts", "shared")["status"]  # type: ignore[index]
    assert status["phase"] == "Available"
    assert "runtimeSecretName" not in status
    assert not [w for w in world.kube.verbs() if w[1] == "secrets"]
    held = world.rt.cluster_credentials["shared"]
    assert base64.b64decode(held.value_b64).decode() == TOKEN
    assert TOKEN not in repr(held)  # never in a log line that prints it
    # A change of its Secret is noticed by the cluster Secret watch, not kopf's.
    key = (world.rt.settings.cluster_account_namespace, "shared-secret")
    assert world.rt.secret_refs[key] == {("", "shared")}


async def test_the_later_object_with_the_same_credential_is_the_duplicate(world: World) -> None:
    from headroom.reconcilers import account

    world.secret("alice", token=TOKEN)
    world.new_account("alice")
    body = world.kube.obj("claudeaccounts", "alice")
    assert body is not None
    body["metadata"]["creationTimestamp"] = "2026-12-01T09:00:00Z"
    await world.reconcile_account("alice")
    world.secret("shared-secret", token=TOKEN)
    new_cluster_account(world, "shared", "2026-12-01T10:00:00Z")
    await reconcile_cluster(world, "shared")
    status = world.kube.obj("clusterclaudeaccounts", "shared")["status"]  # type: ignore[index]
    assert (status["phase"], status["duplicateOf"]) == ("Duplicate", f"ClaudeAccount {NS}/alice")
    assert world.account_status("alice")["phase"] == "Available"
    # The original goes: the roster no longer contradicts... until the duplicate is checked.
    world.kube.objects.pop(("claudeaccounts", "alice"))
    world.index_accounts()
    assert account.stale_duplicates(world.rt, (NS, "alice")) == [("", "shared")]
    await reconcile_cluster(world, "shared")
    status = world.kube.obj("clusterclaudeaccounts", "shared")["status"]  # type: ignore[index]
    assert (status["phase"], status.get("duplicateOf")) == ("Available", None)
    assert account.stale_duplicates(world.rt, (NS, "alice")) == []
