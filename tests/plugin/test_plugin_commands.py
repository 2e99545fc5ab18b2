"""What each subcommand asks of the API server, against a recording fake of the client:
the writes are exactly the documented user writes, and no command touches a Secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.plugin.conftest import ACCOUNTS, FakeKube, account

from headroom.plugin import commands
from headroom.plugin.actions import drill_patch
from headroom.plugin.cluster import Cluster
from headroom.plugin.errors import PluginError
from headroom.plugin.kinds import account_ref

JSON = dict[str, Any]
ALICE = f"{ACCOUNTS}/alice"


def writes(kube: FakeKube) -> list[tuple[str, Any, list[tuple[str, str]]]]:
    return [(path, body, query) for method, path, body, query in kube.calls if method != "GET"]


async def test_status_reads_accounts_and_sessions_and_never_a_secret(kube: FakeKube) -> None:
    text = await commands.status(Cluster(kube), "agents")
    assert text.startswith("Namespace agents, at ") and "\nClaudeAccounts: 5, 1 available\n" in text
    assert [c[1] for c in kube.calls] == [
        ACCOUNTS,
        "/apis/headroom.dev/v1alpha1/clusterclaudeaccounts",
        "/apis/headroom.dev/v1alpha1/namespaces/agents/agentsessions",
    ]
    assert writes(kube) == []


async def test_why_reads_the_session_and_its_events(kube: FakeKube) -> None:
    await commands.why(Cluster(kube), "agents", "fix-flaky-test")
    events = kube.calls[-1]
    assert events[1] == "/api/v1/namespaces/agents/events"
    assert events[3] == [
        ("fieldSelector", "involvedObject.kind=AgentSession,involvedObject.name=fix-flaky-test")
    ]
    assert not any("secrets" in c[1] for c in kube.calls)


async def test_a_drill_writes_a_new_drill_annotation_and_its_duration(kube: FakeKube) -> None:
    def operator_starts_it(account: JSON, patch: JSON) -> None:
        account["status"]["drill"] = {
            "value": patch["metadata"]["annotations"]["headroom.dev/drill"],
            "startedAt": "2026-12-01T16:00:00Z",
            "until": "2099-01-01T00:00:00Z",
            "sessionsToMove": 1,
        }

    kube.after_patch = operator_starts_it
    text = await commands.drill(Cluster(kube), "agents", "alice", "5m", wait=5)
    [(path, body, query)] = writes(kube)
    assert path == ALICE and query == [("fieldManager", "kubectl-headroom")]
    annotations = body["metadata"]["annotations"]
    assert set(body) == {"metadata"} and annotations["headroom.dev/drill-duration"] == "5m"
    assert annotations["headroom.dev/drill"].startswith(str(datetime.now(UTC).year))
    said = " ".join(text.split())
    assert said.startswith("drill started on ClaudeAccount alice: treated as walled for ")
    assert "; 1 session(s) to move. Follow it with: kubectl headroom status -n agents" in said


async def test_a_drill_nobody_starts_says_so(kube: FakeKube) -> None:
    text = await commands.drill(Cluster(kube), "agents", "alice", None, wait=0.6)
    said = " ".join(text.split())
    assert "the operator has not started it within 0.6s: is it running and watching" in said
    [(_, body, _)] = writes(kube)
    # Without --for an earlier duration must not linger: the operator's default applies.
    assert body["metadata"]["annotations"]["headroom.dev/drill-duration"] is None


def test_every_drill_gets_a_new_value() -> None:
    first = drill_patch(datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), None)
    second = drill_patch(datetime(2026, 1, 1, 0, 0, 0, 2000, tzinfo=UTC), None)
    key = "headroom.dev/drill"
    assert first["metadata"]["annotations"][key] != second["metadata"]["annotations"][key]


@pytest.mark.parametrize("duration", ["48h", "0", "ten", "-5m"])
async def test_a_drill_duration_the_operator_would_ignore_is_refused_first(
    kube: FakeKube, duration: str
) -> None:
    with pytest.raises(PluginError, match="--for"):
        await commands.drill(Cluster(kube), "agents", "alice", duration, wait=0)
    assert writes(kube) == []


async def test_a_drill_of_a_missing_account_writes_nothing(kube: FakeKube) -> None:
    with pytest.raises(PluginError, match="ClaudeAccount 'nobody' not found in namespace agents"):
        await commands.drill(Cluster(kube), "agents", "nobody", None, wait=0)
    assert writes(kube) == []


async def test_pause_and_resume_set_spec_paused(kube: FakeKube) -> None:
    cluster = Cluster(kube)
    said = await commands.pause(cluster, "agents", "alice", paused=True)
    assert "alice paused: no new sessions are placed on it" in said
    assert writes(kube) == [
        (ALICE, {"spec": {"paused": True}}, [("fieldManager", "kubectl-headroom")])
    ]
    kube.objects[ALICE]["spec"]["paused"] = True
    kube.calls.clear()
    assert "already paused" in await commands.pause(cluster, "agents", "alice", paused=True)
    assert writes(kube) == []
    await commands.pause(cluster, "agents", "alice", paused=False)
    assert writes(kube)[0][1] == {"spec": {"paused": False}}


async def test_logs_reads_the_current_attempts_pod(
    kube: FakeKube, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    kube.log = b"attempt 2 says hello\n"
    await commands.logs(Cluster(kube), "agents", "fix-flaky-test", "agent", True, 20)
    _, path, _, query = kube.calls[-1]
    assert path == "/api/v1/namespaces/agents/pods/fix-flaky-test-2/log"
    assert query == [("container", "agent"), ("follow", "true"), ("tailLines", "20")]
    assert capsysbinary.readouterr().out == b"attempt 2 says hello\n"


async def test_logs_of_a_session_without_a_pod_points_to_why(kube: FakeKube) -> None:
    with pytest.raises(PluginError, match=r"has no pod \(Waiting\); see: kubectl headroom why"):
        await commands.logs(Cluster(kube), "agents", "refactor-io", "agent", False, None)


async def test_logs_with_nothing_to_show_say_what_the_pod_is_doing(
    kube: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.objects["/api/v1/namespaces/agents/pods/fix-flaky-test-2"] = {
        "spec": {},
        "status": {"phase": "Pending"},
    }
    await commands.logs(Cluster(kube), "agents", "fix-flaky-test", "agent", False, None)
    assert capsys.readouterr().err == (
        "(no log from container agent of pod fix-flaky-test-2: the pod is Pending, not on a "
        "node yet; see: kubectl headroom why fix-flaky-test)\n"
    )


async def test_status_on_a_cluster_without_the_crds_says_so(kube: FakeKube) -> None:
    del kube.objects[ACCOUNTS]
    text = await commands.status(Cluster(kube), "agents")
    said = " ".join(text.split())
    assert (
        "ClaudeAccounts: not shown the cluster does not know claudeaccounts.headroom.dev: are"
        in said
    )


CLUSTER_ACCOUNTS = "/apis/headroom.dev/v1alpha1/clusterclaudeaccounts"


@pytest.mark.parametrize(
    ("ref", "kind", "name"),
    [
        ("alice", "ClaudeAccount", "alice"),
        ("ca/alice", "ClaudeAccount", "alice"),
        ("claudeaccounts.headroom.dev/alice", "ClaudeAccount", "alice"),
        ("cca/shared", "ClusterClaudeAccount", "shared"),
        ("ClusterClaudeAccount/shared", "ClusterClaudeAccount", "shared"),
    ],
)
def test_accounts_are_named_as_kubectl_names_them(ref: str, kind: str, name: str) -> None:
    found_kind, found_name = account_ref(ref)
    assert (found_kind.name, found_name) == (kind, name)


@pytest.mark.parametrize("ref", ["pod/alice", "cca/", "ags/x"])
def test_a_reference_to_no_account_is_refused(ref: str) -> None:
    with pytest.raises(PluginError, match="names no account: write NAME, ClaudeAccount/NAME or"):
        account_ref(ref)


async def test_drill_and_pause_reach_a_cluster_account_by_its_cluster_path(
    kube: FakeKube,
) -> None:
    shared = account("shared")
    shared["metadata"].pop("namespace")
    kube.objects[f"{CLUSTER_ACCOUNTS}/shared"] = shared
    cluster = Cluster(kube)
    said = await commands.drill(cluster, "agents", "cca/shared", "2m", wait=0)
    assert said.startswith("drill asked on ClusterClaudeAccount shared (headroom.dev/drill=")
    await commands.pause(cluster, "agents", "ClusterClaudeAccount/shared", paused=True)
    assert [path for path, _, _ in writes(kube)] == [f"{CLUSTER_ACCOUNTS}/shared"] * 2
