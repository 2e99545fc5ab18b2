"""ClusterClaudeAccounts on the real API server: one account shared by two team namespaces
is one ledger (maxSessions across both, a wall seen from one namespace holds for the other),
a namespace it does not admit never gets it, the same credential as a ClaudeAccount makes
the later object a DuplicateCredential, and a team cannot reach the credential."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.cluster_accounts import (
    cluster_status,
    create_cluster_account,
    wait_cluster_phase,
)
from tests.support.operator import GROUP, VERSION, OperatorProcess, Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome
from headroom.kube.agent_pod import SOURCE_VOLUME

pytestmark = pytest.mark.integration
USER_ROLES = Path(__file__).resolve().parents[2] / "manifests" / "base" / "rbac-users.yaml"


@dataclass
class Teams:
    """Two team namespaces the cluster accounts admit, one they do not, and the operator's."""

    a: Scene
    b: Scene
    outsider: Scene
    system: str
    api: client.ApiClient
    core: client.CoreV1Api
    suffix: str
    created: list[str] = field(default_factory=list)

    def cluster_account(
        self, name: str, *, max_sessions: int, priority: int = 0, token: str | None = None
    ) -> str:
        """A ClusterClaudeAccount admitting team a by name and team b by label."""
        full = create_cluster_account(
            self.api,
            self.system,
            f"{name}-{self.suffix}",
            max_sessions=max_sessions,
            priority=priority,
            token=token,
            admits={
                "names": [self.a.ns],
                "selector": {"matchLabels": {f"pool-{self.suffix}": "shared"}},
            },
        )
        self.created.append(full)
        return full

    def status(self, name: str) -> dict[str, Any]:
        return cluster_status(self.api, name)

    def wait_phase(self, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        return wait_cluster_phase(self.api, name, phase, timeout)

    def live_pods(self) -> list[client.V1Pod]:
        return self.a.live_pods() + self.b.live_pods() + self.outsider.live_pods()


@pytest.fixture
def teams(k8s: Any, kubectl: Any, namespace: str) -> Iterator[Teams]:
    suffix = uuid.uuid4().hex[:6]
    names = {role: f"{namespace[:40]}-{role}" for role in ("b", "out", "sys")}
    for name in names.values():
        kubectl("create", "namespace", name)
        kubectl("label", "namespace", name, "headroom.dev/test=true")
    kubectl("label", "namespace", names["b"], f"pool-{suffix}=shared")
    for name in (namespace, names["b"], names["out"]):  # pods need the default ServiceAccount
        wait_for(
            f"default ServiceAccount in {name}",
            lambda n=name: kubectl("get", "sa", "default", "-n", n, check=False).returncode == 0,
        )
    scenes = Teams(
        a=Scene(k8s, namespace),
        b=Scene(k8s, names["b"]),
        outsider=Scene(k8s, names["out"]),
        system=names["sys"],
        api=k8s,
        core=client.CoreV1Api(k8s),
        suffix=suffix,
    )
    try:
        yield scenes
    finally:
        for account in scenes.created:
            kubectl("delete", "clusterclaudeaccount", account, "--wait=false", check=False)
        for name in names.values():
            kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(kubeconfig: Path, teams: Teams, tmp_path: Path) -> Iterator[OperatorProcess]:
    """One operator for the three team namespaces; cluster accounts' Secrets in `system`."""
    extra = ["-n", teams.b.ns, "-n", teams.outsider.ns, "--cluster-account-namespace", teams.system]
    proc = OperatorProcess(kubeconfig, teams.a.ns, tmp_path / "operator", extra=extra).start()
    try:
        yield proc
    finally:
        proc.stop()


SHARED = {"accountScope": "Cluster", "accountSelector": {"matchLabels": {"tier": "shared"}}}


def phases(scene: Scene, names: list[str]) -> dict[str, str]:
    return {n: scene.status("agentsessions", n).get("phase", "") for n in names}


def test_one_cluster_account_is_one_ledger_for_two_namespaces(
    teams: Teams, operator: OperatorProcess
) -> None:
    shared = teams.cluster_account("shared", max_sessions=3)
    teams.wait_phase(shared, "Available")
    a_names, b_names = ["a1", "a2", "a3"], ["b1", "b2"]
    # a1, b1 and a2 fill the account; then b2 and a3 arrive to find it full.
    for scene, name in ((teams.a, "a1"), (teams.b, "b1"), (teams.a, "a2")):
        scene.session(name, **SHARED)
        scene.wait_running(name, attempt=1, timeout=60)
    teams.b.session("b2", **SHARED)
    teams.a.session("a3", **SHARED)

    def settled() -> dict[str, int] | None:
        all_phases = [*phases(teams.a, a_names).values(), *phases(teams.b, b_names).values()]
        counts = {p: all_phases.count(p) for p in set(all_phases)}
        return counts if counts == {"Running": 3, "Waiting": 2} else None

    wait_for("3 sessions running on the shared account, 2 waiting", settled, timeout=60)
    # Held across namespaces, and still held a while later (no late second placement).
    for _ in range(20):
        assert len(teams.live_pods()) == 3
        assert settled()
    wait_for("activeSessions 3", lambda: teams.status(shared).get("activeSessions") == 3)
    # Its metrics carry namespace="": one series for the account, whatever namespace uses it.
    series = f'headroom_account_active_sessions{{account="{shared}",namespace=""}} 3.0'
    wait_for("the cluster account's gauge", lambda: series in operator.metrics())
    for scene, names in ((teams.a, a_names), (teams.b, b_names)):
        for name in names:
            status = scene.status("agentsessions", name)
            if status["phase"] == "Running":
                assert status["account"] == f"ClusterClaudeAccount/{shared}"
                pod = scene.pod(status["podName"])
                assert pod is not None
                # The pod mounts the session's own copy of the credential, in its namespace.
                secret = scene.core.read_namespaced_secret(f"headroom-credential-{name}", scene.ns)
                assert secret.metadata.owner_references[0].name == name
                assert base64.b64decode(secret.data["token"]).decode() == f"fake-{shared}-token"
                volumes = {v.name: v for v in pod.spec.volumes}
                assert volumes[SOURCE_VOLUME].secret.secret_name == secret.metadata.name
            else:
                assert "is full (3/3)" in status.get("waitingMessage", ""), status

    # A second cluster account takes the two that waited.
    spare = teams.cluster_account("spare", max_sessions=3, priority=-1)
    wait_for(
        "all five running",
        lambda: (
            [*phases(teams.a, a_names).values(), *phases(teams.b, b_names).values()]
            == ["Running"] * 5
        ),
        timeout=60,
    )
    on = {
        (scene.ns, name): scene.status("agentsessions", name)["account"]
        for scene, names in ((teams.a, a_names), (teams.b, b_names))
        for name in names
    }
    assert sorted(on.values()).count(f"ClusterClaudeAccount/{shared}") == 3

    # A wall reported by a session of namespace a...
    walled_a = next(n for (ns, n), acct in on.items() if ns == teams.a.ns and shared in acct)
    pod = teams.a.current_pod(walled_a)
    teams.a.finish_pod(
        pod, Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600),
        utilization={"five_hour": 1.0}, evidence="You've hit your limit",
    )  # fmt: skip
    teams.wait_phase(shared, "Walled")
    moved = teams.a.wait_running(walled_a, attempt=2, timeout=60)
    assert moved["account"] == f"ClusterClaudeAccount/{spare}"
    # ...holds for a session of namespace b: its next attempt does not go back to the walled
    # account (the spare one is full now), it waits, naming the wall.
    assert on[(teams.b.ns, "b1")] == f"ClusterClaudeAccount/{shared}"
    teams.b.finish_pod(teams.b.current_pod("b1"), Outcome.FAILED, detail="flaky")
    waiting = teams.b.wait_phase("agentsessions", "b1", "Waiting", timeout=60)
    assert f"ClusterClaudeAccount/{shared} is Walled" in waiting["waitingMessage"]
    assert f"ClusterClaudeAccount/{spare} is full (3/3)" in waiting["waitingMessage"]
    assert len(teams.live_pods()) == 4  # a1 or a2 still on the walled account, 3 on spare


def test_a_namespace_the_account_does_not_admit_never_gets_it(
    teams: Teams, operator: OperatorProcess, kubectl: Any
) -> None:
    shared = teams.cluster_account("shared", max_sessions=3)
    teams.wait_phase(shared, "Available")
    teams.outsider.session("c1", **SHARED)
    waiting = teams.outsider.wait_phase("agentsessions", "c1", "Waiting")
    message = waiting["waitingMessage"]
    assert f"ClusterClaudeAccount/{shared} does not admit namespace {teams.outsider.ns}" in message
    assert "spec.allowedNamespaces" in message
    assert teams.outsider.live_pods() == []
    # Admitting the namespace (a label the selector matches) lets the session run there.
    kubectl("label", "namespace", teams.outsider.ns, f"pool-{teams.suffix}=shared")
    teams.outsider.patch("agentsessions", "c1", {"metadata": {"annotations": {"poke": "1"}}})
    running = teams.outsider.wait_running("c1", attempt=1, timeout=60)
    assert running["account"] == f"ClusterClaudeAccount/{shared}"


def test_a_session_of_namespaced_scope_never_uses_a_cluster_account(
    teams: Teams, operator: OperatorProcess
) -> None:
    shared = teams.cluster_account("shared", max_sessions=3)
    teams.wait_phase(shared, "Available")
    teams.a.session("plain", accountSelector={"matchLabels": {"tier": "shared"}})
    waiting = teams.a.wait_phase("agentsessions", "plain", "Waiting")
    assert "no ClaudeAccount matches" in waiting["waitingMessage"]


def test_the_same_credential_twice_makes_the_later_object_a_duplicate(
    teams: Teams, operator: OperatorProcess
) -> None:
    token = f"one-subscription-{teams.suffix}"
    teams.a.account("team-max", token=token, labels={"tier": "shared"})
    shared = teams.cluster_account("shared", max_sessions=3, token=token)
    status = teams.wait_phase(shared, "Duplicate")
    assert status["duplicateOf"] == f"ClaudeAccount {teams.a.ns}/team-max"
    condition = next(c for c in status["conditions"] if c["type"] == "DuplicateCredential")
    assert condition["status"] == "True" and f"{teams.a.ns}/team-max" in condition["message"]
    assert teams.a.status("claudeaccounts", "team-max")["phase"] == "Available"
    # The duplicate takes no session even when the original is full.
    teams.a.session("s1", accountScope="All", accountSelector={"matchLabels": {"tier": "shared"}})
    teams.a.session("s2", accountScope="All", accountSelector={"matchLabels": {"tier": "shared"}})
    teams.a.session("s3", accountScope="All", accountSelector={"matchLabels": {"tier": "shared"}})
    wait_for(
        "two running on the original, one waiting",
        lambda: (
            sorted(phases(teams.a, ["s1", "s2", "s3"]).values())
            == ["Running", "Running", "Waiting"]
        ),
        timeout=60,
    )
    assert all(
        teams.a.status("agentsessions", s).get("account") in {"team-max", None}
        for s in ("s1", "s2", "s3")
    )
    # Once the original is gone, the cluster account is the only holder: usable.
    teams.a.custom.delete_namespaced_custom_object(
        GROUP, VERSION, teams.a.ns, "claudeaccounts", "team-max"
    )
    available = teams.wait_phase(shared, "Available", timeout=60)
    assert "duplicateOf" not in available or available["duplicateOf"] is None


def test_a_team_cannot_reach_a_cluster_accounts_credential(
    teams: Teams, operator: OperatorProcess, kubectl: Any
) -> None:
    """A user with admin rights in the team namespaces, impersonated on the real API server."""
    user = f"team-user-{teams.suffix}"
    # The roles the manifests give people, aggregated into the built-in admin role.
    kubectl("apply", "-f", str(USER_ROLES))
    wait_for(
        "admin aggregates headroom-edit",
        lambda: "agentsessions" in kubectl("get", "clusterrole", "admin", "-o", "yaml").stdout,
    )
    for ns in (teams.a.ns, teams.outsider.ns):
        kubectl("create", "rolebinding", f"admin-{teams.suffix}", "--clusterrole=admin",
                f"--user={user}", "-n", ns)  # fmt: skip
    shared = teams.cluster_account("shared", max_sessions=3)
    teams.wait_phase(shared, "Available")

    def can(*args: str) -> bool:
        done = kubectl("auth", "can-i", *args, f"--as={user}", check=False)
        return done.stdout.strip() == "yes"

    assert can("create", "agentsessions.headroom.dev", "-n", teams.outsider.ns)
    assert not can("get", "secrets", "-n", teams.system)
    assert not can("get", f"secret/{shared}-claude", "-n", teams.system)
    assert not can("patch", "clusterclaudeaccounts.headroom.dev")
    assert not can("patch", "clusterclaudeaccounts.headroom.dev", "--subresource=status")
    assert not can("create", "clusterclaudeaccounts.headroom.dev")
    # As that user: a session in a namespace the account does not admit only waits.
    manifest = (
        f"apiVersion: {GROUP}/{VERSION}\nkind: AgentSession\n"
        f"metadata: {{name: sneaky, namespace: {teams.outsider.ns}}}\n"
        "spec: {prompt: p, accountScope: Cluster}\n"
    )
    kubectl("create", "-f", "-", f"--as={user}", input=manifest)
    waiting = teams.outsider.wait_phase("agentsessions", "sneaky", "Waiting")
    assert "does not admit" in waiting["waitingMessage"]
    assert teams.outsider.live_pods() == []
    secrets = teams.core.list_namespaced_secret(teams.outsider.ns).items
    assert not [s for s in secrets if s.metadata.name.startswith("headroom-credential-")]


def test_kubectl_shows_cluster_accounts_with_the_namespaced_kinds(
    teams: Teams, operator: OperatorProcess, kubectl: Any
) -> None:
    shared = teams.cluster_account("shared", max_sessions=3)
    teams.wait_phase(shared, "Available")
    listed = kubectl("get", "headroom", "-n", teams.a.ns, "-o", "name").stdout.split()
    assert f"clusterclaudeaccount.headroom.dev/{shared}" in listed
    table = kubectl("get", "cca", shared, "-o", "wide").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:6] == ["NAME", "PHASE", "ACTIVE", "MAX", "RESETS", "AGE"]
    assert row[:4] == [shared, "Available", "0", "3"]
    assert "NAMESPACES" in header and f'["{teams.a.ns}"]' in table[1]
    events = kubectl(
        "get", "events", "-n", teams.system, "--field-selector",
        f"involvedObject.kind=ClusterClaudeAccount,involvedObject.name={shared}", "-o", "name",
    ).stdout  # fmt: skip
    assert events.strip(), "no Event about the cluster account in the operator's namespace"
