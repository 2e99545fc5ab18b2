"""`kubectl headroom` through the real kubectl, which finds the installed kubectl-headroom
script on PATH, against the test cluster with a running operator. The commands run as a
user holding only the Role that docs/operator-guide.md gives plugin users (no Secrets)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.plugin.conftest import Plugin
from tests.support.operator import OperatorProcess, Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome
from headroom.core.durations import parse_time

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
USER = "plugin-user"


def documented(kind: str, name: str) -> dict[str, Any]:
    """A Role or ClusterRole of the operator guide's plugin section, as a reader copies it."""
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    [found] = [
        doc
        for block in blocks
        for doc in yaml.safe_load_all(block)
        if doc and doc.get("kind") == kind and doc["metadata"]["name"] == name
    ]
    return dict(found)


def user_kubeconfig(kubectl: Any, admin: Path, namespace: str, out: Path) -> Path:
    """A kubeconfig for a ServiceAccount bound to the documented Role, in `namespace`."""
    role = documented("Role", "headroom-plugin-user")
    role["metadata"]["namespace"] = namespace
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(role))
    kubectl("create", "serviceaccount", USER, "-n", namespace)
    kubectl("create", "rolebinding", USER, "-n", namespace, "--role=headroom-plugin-user",
            f"--serviceaccount={namespace}:{USER}")  # fmt: skip
    token = kubectl("create", "token", USER, "-n", namespace).stdout.strip()
    config = yaml.safe_load(admin.read_text())
    config["users"] = [{"name": USER, "user": {"token": token}}]
    config["contexts"] = [
        {"name": USER, "context": {"cluster": config["clusters"][0]["name"], "user": USER,
                                   "namespace": namespace}},
    ]  # fmt: skip
    config["current-context"] = USER
    out.write_text(yaml.safe_dump(config))
    return out


def test_kubectl_finds_the_plugin_on_path(plugin: Plugin) -> None:
    listed = plugin.kubectl_itself("plugin", "list")
    script = Path(plugin.env["PATH"].split(":")[0]) / "kubectl-headroom"
    assert str(script) in listed.stdout.splitlines(), listed.stdout
    shown = plugin("--help").stdout
    assert shown.startswith("usage: kubectl headroom")


def test_a_person_follows_a_wall_a_drill_and_a_pause(
    plugin: Plugin, scene: Scene, operator: OperatorProcess, kubectl: Any, kubeconfig: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    ns = scene.ns
    user = plugin.as_user(user_kubeconfig(kubectl, kubeconfig, ns, tmp_path / "user.yaml"))
    scene.account("alice", priority=10, max_sessions=1)
    scene.account("bob", max_sessions=1)
    scene.session("x")
    first = scene.wait_running("x")
    assert first["account"] == "alice"
    reset = in_seconds(3600)
    scene.finish_pod(
        first["podName"], Outcome.WALLED, window="five_hour", resets_at=reset,
        utilization={"five_hour": 1.0}, evidence="You've hit your 5-hour limit",
    )  # fmt: skip
    moved = scene.wait_running("x", attempt=2)
    assert moved["account"] == "bob"
    scene.session("y")
    scene.wait_phase("agentsessions", "y", "Waiting")

    # Account counters are written once they stop moving (a second after the last change).
    def counters() -> list[object]:
        return [scene.status("claudeaccounts", a).get("activeSessions") for a in ("alice", "bob")]

    wait_for("activeSessions alice 0, bob 1", lambda: counters() == [0, 1])

    # The context's namespace is the default, as with kubectl.
    status = user("status").stdout
    # The Role alone does not reach cluster-scoped accounts: said, and the rest still shown.
    said = " ".join(status.split())
    assert (
        "ClusterClaudeAccounts (cluster-wide): not shown GET /apis/headroom.dev/v1alpha1/" in said
    )
    assert "403" in said and "cannot list resource" in said, status
    assert max(len(line) for line in status.splitlines()) <= 80, status
    lines = status.splitlines()
    assert lines[0].startswith(f"Namespace {ns}, at ")
    assert lines[1] == "ClaudeAccounts: 2, 1 available"
    [alice] = [line for line in lines if line.startswith("alice ")]
    assert alice.split()[:5] == ["alice", "Walled", "0/1", "five_hour", "100%"]
    assert re.search(r"(59m|1h00m) \(\d\d:\d\dZ\)$", alice), alice
    [bob] = [line for line in lines if line.startswith("bob ")]
    assert bob.split()[:3] == ["bob", "Available", "1/1"]
    assert "AgentSessions: 2" in lines
    [waiting] = [line for line in lines if line.startswith("y ")]
    assert waiting.split()[:3] == ["y", "Waiting", "NoHeadroom"]

    why = user("why", "x").stdout
    assert why.startswith(f"AgentSession x in namespace {ns}\n")
    assert "  phase     Running on bob, primary path, attempt 2, 1 swap\n" in why
    assert re.search(r"\n  \d\d:\d\dZ +alice +bob +Walled \(five_hour\)\n", why), why
    assert "walled, " in why and "window five_hour" in why
    for reason in ("Placed", "Swapped"):
        assert re.search(rf"\n +\d+[smh]\S* +(Normal|Warning) +{reason}", why), why
    assert max(len(line) for line in why.splitlines()) <= 80, why

    drilled = user("drill", "bob", "--for", "45s").stdout
    assert max(len(line) for line in drilled.splitlines()) <= 80, drilled
    said = " ".join(drilled.split())
    assert said.startswith("drill started on ClaudeAccount bob: treated as walled for 4"), said
    assert "1 session(s) to move" in said, said
    drill = scene.status("claudeaccounts", "bob")["drill"]
    length = parse_time(drill["until"]) - parse_time(drill["startedAt"])  # type: ignore[operator]
    assert length.total_seconds() == 45
    annotations = scene.get("claudeaccounts", "bob")["metadata"]["annotations"]
    assert annotations["headroom.dev/drill-duration"] == "45s"
    wait_for("x stopped by the drill", lambda: scene.status("agentsessions", "x").get("phase")
             in {"Waiting", "Pending"})  # fmt: skip

    said = user("pause", "alice").stdout
    assert said.startswith("ClaudeAccount alice paused")
    assert scene.get("claudeaccounts", "alice")["spec"]["paused"] is True
    scene.wait_phase("claudeaccounts", "alice", "Paused")
    assert re.search(r"\nalice +Paused ", user("status").stdout)
    user("resume", "alice")
    assert scene.get("claudeaccounts", "alice")["spec"]["paused"] is False
    scene.wait_phase("claudeaccounts", "alice", "Walled")  # still walled, no longer paused


def test_errors_are_one_line_a_person_can_act_on(
    plugin: Plugin, scene: Scene, operator: OperatorProcess
) -> None:
    ns = scene.ns
    missing = plugin("why", "nope", "-n", ns, ok=False)
    assert missing.returncode == 1
    assert (
        missing.stderr == f"kubectl headroom why: AgentSession 'nope' not found in namespace {ns}\n"
    )
    scene.account("alice")
    scene.session("x")
    running = scene.wait_running("x")
    # Agent pods in these tests are bound to no node: the API server answers with no content
    # (kubectl logs prints nothing), and the plugin says why there is nothing.
    logs = plugin("logs", "x", "-n", ns)
    assert logs.stdout == ""
    assert logs.stderr == (
        f"(no log from container agent of pod {running['podName']}: the pod is Pending, not "
        "on a node yet; see: kubectl headroom why x)\n"
    )
    refused = plugin("drill", "alice", "--for", "3d", "-n", ns, ok=False)
    assert (
        refused.stderr
        == "kubectl headroom drill: --for: '3d' is not a duration like 90s, 5m or 1h30m\n"
    )


def test_with_the_documented_cluster_role_status_lists_cluster_accounts(
    plugin: Plugin, scene: Scene, kubectl: Any, kubeconfig: Path, tmp_path: Path
) -> None:
    ns = scene.ns
    user = plugin.as_user(user_kubeconfig(kubectl, kubeconfig, ns, tmp_path / "user.yaml"))
    cluster_role = documented("ClusterRole", "headroom-plugin-user-cluster-accounts")
    shared = f"shared-{ns[-8:]}"  # cluster-scoped: unique to this test, deleted below
    account = {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "ClusterClaudeAccount",
        "metadata": {"name": shared},
        "spec": {
            "credentials": {"secretRef": {"name": f"{shared}-claude"}, "type": "APIKey"},
            "maxSessions": 3,
            "allowedNamespaces": {"names": [ns]},
        },
    }
    binding = f"plugin-user-{ns}"
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump(cluster_role))
        kubectl("create", "clusterrolebinding", binding,
                f"--clusterrole={cluster_role['metadata']['name']}",
                f"--serviceaccount={ns}:{USER}")  # fmt: skip
        kubectl("create", "-f", "-", input=yaml.safe_dump(account))

        def shown() -> str | None:
            out = user("status").stdout
            return None if "not shown" in out else out

        status = wait_for("the binding to take effect", shown)
        lines = status.splitlines()
        assert "ClusterClaudeAccounts (cluster-wide): 1, 0 available" in lines, status
        [row] = [line for line in lines if line.startswith(shared + " ")]
        assert row.split()[2] == "0/3", row

        # Reading them is not changing them: the read-only ClusterRole does not drill.
        refused = user("drill", f"cca/{shared}", "--wait", "0", ok=False)
        assert refused.returncode == 1 and "cannot patch resource" in refused.stderr, refused
        # Someone who may (here the cluster's admin) drills and pauses one by kubectl's name.
        said = plugin("drill", f"ClusterClaudeAccount/{shared}", "--for", "1m", "--wait", "0")
        assert said.stdout.startswith(f"drill asked on ClusterClaudeAccount {shared} (")
        plugin("pause", f"cca/{shared}")
        stored = scene.custom.get_cluster_custom_object(
            "headroom.dev", "v1alpha1", "clusterclaudeaccounts", shared
        )
        assert stored["spec"]["paused"] is True
        assert stored["metadata"]["annotations"]["headroom.dev/drill-duration"] == "1m"
    finally:
        kubectl("delete", "clusterclaudeaccount", shared, "--ignore-not-found", "--wait=false")
        kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found")
        kubectl("delete", "clusterrole", cluster_role["metadata"]["name"], "--ignore-not-found")
