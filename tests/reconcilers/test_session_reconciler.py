"""The AgentSession reconciler at chosen times, against an in-memory Kube: each test asserts
the writes a pass makes, in order, and what status then says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.reconcilers.conftest import NS, World, completed, failed, walled

from headroom.contract.termination import Outcome, TerminationMessage, encode
from headroom.kube.client import KubeConflict, KubeError
from headroom.reconcilers import metrics, session_status
from headroom.reconcilers.runtime import LivePod, Settings

ONE_REPO = [{"url": "https://git.example.com/team/app.git", "credentialsSecretRef": {"name": "gt"}}]


async def test_first_pass_creates_workspace_then_pod_then_status(world: World) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    assert world.kube.verbs() == [
        ("create", "persistentvolumeclaims", "s1-workspace"),
        ("create", "pods", "s1-1"),
        ("patch-status", "agentsessions", "s1"),
    ]
    status = world.status("s1")
    assert (status["phase"], status["account"], status["attempt"]) == ("Running", "alice", 1)
    assert status["workspaceClaim"] == "s1-workspace"
    assert world.condition("s1", "Ready")["reason"] == "Running"
    assert world.events[-1][:2] == ("Normal", "Placed")


async def test_a_wall_moves_the_session_and_records_the_attempt(world: World) -> None:
    world.account("alice", priority=10)
    world.account("bob")
    world.session("s1")
    await world.reconcile("s1")
    world.clock.advance(40)
    world.end_pod("s1-1", walled(turns=3, cost_usd=0.5), code=75, seconds=40)
    world.kube.writes.clear()
    await world.reconcile("s1")
    assert world.kube.verbs() == [
        ("patch-status", "claudeaccounts", "alice"),  # the wall first: crash-safe order
        ("create", "pods", "s1-2"),
        ("patch-status", "agentsessions", "s1"),
        ("delete", "pods", "s1-1"),
    ]
    status = world.status("s1")
    assert (status["account"], status["attempt"], status["swapCount"]) == ("bob", 2, 1)
    assert status["totals"] == {"turns": 3, "costUSD": 0.5, "durationSeconds": 40.0}
    (record,) = status["attempts"]
    assert (record["attempt"], record["account"], record["outcome"]) == (1, "alice", "walled")
    assert record["durationSeconds"] == 40.0
    assert world.agent_env("s1-2")["HEADROOM_EXPECT_TRANSCRIPT"] == "true"


async def test_completion_reports_summary_structured_output_and_totals(world: World) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", failed(turns=2, cost_usd=0.25), code=1, seconds=10)
    await world.reconcile("s1")
    world.clock.advance(60)
    await world.reconcile("s1")  # the backoff is over: attempt 2
    answer = completed(turns=5, cost_usd=1.0, summary="Fixed it.", structured_output={"ok": True})
    world.end_pod("s1-2", answer, code=0, seconds=20)
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Succeeded"
    assert status["result"] == {
        "outcome": "completed",
        "reason": "Completed",
        "turns": 7,
        "costUSD": 1.25,
        "durationSeconds": 30.0,
        "detail": "the run finished",
        "summary": "Fixed it.",
        "structuredOutput": {"ok": True},
    }
    assert [a["outcome"] for a in status["attempts"]] == ["failed", "completed"]
    assert status["finishedAt"] == "2026-12-01T12:01:00Z"


def test_a_huge_structured_output_stays_out_of_status() -> None:
    # Status lives in etcd beside the rest of the object: the operator bounds the answer.
    value, note = session_status.bounded_structured_output({"rows": ["x" * 100] * 200})
    assert value is None and "16 KiB" in note
    assert session_status.bounded_structured_output({"ok": 1}) == ({"ok": 1}, "")


async def test_timeout_stops_the_running_pod_and_fails_the_session(world: World) -> None:
    world.account("alice")
    world.session("s1", timeout="1m")
    await world.reconcile("s1")
    assert world.pod("s1-1")["spec"]["activeDeadlineSeconds"] == 120  # 60 s left + 60 s
    # No pass runs while a pod just runs: the placing pass set the timer already.
    assert world.rt.wakeups.pending(("session", NS, "s1")) == world.clock.now + timedelta(
        seconds=60
    )
    world.run_pod("s1-1")
    world.clock.advance(30)
    world.kube.writes.clear()
    await world.reconcile("s1")
    assert ("delete", "pods", "s1-1") not in world.kube.verbs()
    due = world.rt.wakeups.pending(("session", NS, "s1"))
    assert due == world.clock.now + timedelta(seconds=30)  # the pass wakes at the deadline
    world.clock.advance(31)
    await world.reconcile("s1")
    assert ("delete", "pods", "s1-1") in world.kube.verbs()
    assert world.status("s1")["evictionReason"] == "TimedOut"
    world.end_pod("s1-1", failed("Stopped by SIGTERM"), code=1, seconds=61)
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["result"]["reason"]) == ("Failed", "TimedOut")
    assert world.condition("s1", "Ready")["reason"] == "TimedOut"
    assert status["attempts"][0]["outcome"] == "evicted"


async def test_a_pod_gone_before_it_was_read_counts_from_its_creation(world: World) -> None:
    world.account("alice")
    world.session("s1", timeout="1m")
    await world.reconcile("s1")
    world.run_pod("s1-1")
    world.clock.advance(61)
    await world.reconcile("s1")  # deletes the pod for the timeout
    del world.kube.objects[("pods", "s1-1")]  # and it is gone before the next pass
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["result"]["reason"]) == ("Failed", "TimedOut")
    assert status["totals"]["durationSeconds"] == 61.0


async def test_time_already_used_counts_against_the_timeout(world: World) -> None:
    world.account("alice")
    world.session("s1", timeout="100s")
    await world.reconcile("s1")
    world.clock.advance(10)
    world.end_pod("s1-1", walled(), code=75, seconds=70)
    world.account("bob")
    await world.reconcile("s1")
    # 70 s were used: attempt 2 has 30 s, and the kubelet deadline says so.
    assert world.pod("s1-2")["spec"]["activeDeadlineSeconds"] == 90


async def test_the_budget_is_shared_by_attempts_and_ends_the_session(world: World) -> None:
    world.account("alice", priority=10)
    world.account("bob")
    world.session("s1", claude={"maxBudgetUSD": 2})
    await world.reconcile("s1")
    assert world.claude_options("s1-1")["maxBudgetUSD"] == 2.0
    world.end_pod("s1-1", walled(cost_usd=1.5), code=75)
    await world.reconcile("s1")
    assert world.claude_options("s1-2")["maxBudgetUSD"] == 0.5  # what is left
    world.end_pod("s1-2", failed("error_max_budget_usd", cost_usd=0.5), code=1)
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["result"]["reason"]) == ("Failed", "BudgetExhausted")
    assert status["result"]["costUSD"] == 2.0


async def test_a_clone_failure_is_retried_with_backoff_never_a_wall(world: World) -> None:
    world.account("alice")
    world.session("s1", repos=ONE_REPO)
    await world.reconcile("s1")
    pod = world.pod("s1-1")
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["credential", "clone"]
    message = TerminationMessage(
        Outcome.WALLED,
        window="five_hour",
        resets_at="2027-01-01T00:00:00Z",
        detail="RepoCloneFailed: fatal: Authentication failed",
    )

    pod["status"] = {
        "phase": "Failed",
        "initContainerStatuses": [
            {"name": "clone", "state": {"terminated": {"exitCode": 1, "message": encode(message)}}}
        ],
        "containerStatuses": [
            {"name": "agent", "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    }
    world.kube.writes.clear()
    await world.reconcile("s1")
    # A clone container that claims a wall is not believed: nothing is written to alice.
    assert ("patch-status", "claudeaccounts", "alice") not in world.kube.verbs()
    status = world.status("s1")
    assert status["pendingMove"]["reason"] == "RepoCloneFailed"
    assert status["lastOutcome"]["outcome"] == "failed"
    assert "Authentication failed" in status["lastOutcome"]["detail"]
    ready = world.condition("s1", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RepoCloneFailed")
    assert status["retryAt"] > "2026-12-01T12:00:00Z" and not status.get("reposCloned")


async def test_after_a_clone_succeeded_later_attempts_have_no_clone_container(world: World) -> None:
    world.account("alice", priority=10)
    world.account("bob")
    world.session("s1", repos=ONE_REPO)
    await world.reconcile("s1")
    world.end_pod("s1-1", walled(), code=75)
    world.pod("s1-1")["status"]["initContainerStatuses"] = [
        {"name": "clone", "state": {"terminated": {"exitCode": 0}}}
    ]
    await world.reconcile("s1")
    assert world.status("s1")["reposCloned"] is True
    init = world.pod("s1-2")["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["credential"]


async def test_a_container_that_cannot_start_names_the_reason(world: World) -> None:
    world.account("alice")
    world.session("s1", image="registry.invalid/nope:1")
    await world.reconcile("s1")
    world.pod("s1-1")["status"] = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "agent", "state": {"waiting": {"reason": "ErrImagePull",
                                                    "message": "pull access denied"}}}
        ],
    }  # fmt: skip
    await world.reconcile("s1")
    ready = world.condition("s1", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ErrImagePull")
    assert "pull access denied" in ready["message"]


async def test_wait_timeout_fails_a_session_that_waited_too_long(world: World) -> None:
    world.account("alice", paused=True)
    world.kube.obj("claudeaccounts", "alice")["spec"]["paused"] = True
    world.accounts[NS] = []  # no account can take it
    world.session("s1", waitTimeout="5m")
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Waiting" and status["waitingSince"] == "2026-12-01T12:00:00Z"
    world.clock.advance(200)
    await world.reconcile("s1")
    assert world.status("s1")["waitingSince"] == "2026-12-01T12:00:00Z"  # from the first wait
    world.clock.advance(101)
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["result"]["reason"]) == ("Failed", "NoHeadroomTimeout")


async def test_ttl_deletes_a_finished_session_when_due(world: World) -> None:
    world.account("alice")
    world.session("s1", ttlSecondsAfterFinished=60)
    await world.reconcile("s1")
    world.end_pod("s1-1", completed(), code=0)
    await world.reconcile("s1")
    assert world.status("s1")["phase"] == "Succeeded"
    world.clock.advance(30)
    await world.reconcile("s1")
    assert ("delete", "agentsessions", "s1") not in world.kube.verbs()
    world.clock.advance(31)
    await world.reconcile("s1")
    assert world.kube.verbs()[-1] == ("delete", "agentsessions", "s1")


async def test_continue_from_waits_then_takes_conversation_and_workspace(world: World) -> None:
    world.account("alice", max_sessions=2)
    world.session("first")
    await world.reconcile("first")
    world.session("second", continueFrom={"name": "first"})
    await world.reconcile("second")
    ready = world.condition("second", "Ready")
    assert (ready["reason"], world.status("second")["phase"]) == ("PredecessorRunning", "Pending")
    assert world.kube.obj("pods", "second-1") is None
    world.end_pod("first-1", completed(), code=0)
    await world.reconcile("first")
    world.kube.writes.clear()
    await world.reconcile("second")
    first, second = world.status("first"), world.status("second")
    assert second["claudeSessionId"] == first["claudeSessionId"]
    assert second["workspaceClaim"] == "first-workspace"
    assert world.kube.verbs()[:2] == [
        ("patch", "persistentvolumeclaims", "first-workspace"),  # a second owner
        ("create", "pods", "second-1"),
    ]
    owners = world.kube.obj("persistentvolumeclaims", "first-workspace")["metadata"][
        "ownerReferences"
    ]
    assert [(o["name"], o["controller"]) for o in owners] == [("first", True), ("second", False)]
    env = world.agent_env("second-1")
    assert env["HEADROOM_EXPECT_TRANSCRIPT"] == "true"
    assert env["HEADROOM_PROMPT"] == "Fix the flaky test"
    claim = next(v for v in world.pod("second-1")["spec"]["volumes"] if v["name"] == "workspace")
    assert claim["persistentVolumeClaim"]["claimName"] == "first-workspace"


async def test_continue_from_a_session_without_conversation_fails(world: World) -> None:
    world.session("first")
    world.kube.obj("agentsessions", "first")["status"] = {"phase": "Failed"}
    world.session("second", continueFrom={"name": "first"})
    await world.reconcile("second")
    status = world.status("second")
    assert (status["phase"], status["result"]["reason"]) == (
        "Failed",
        "PredecessorHasNoConversation",
    )


async def test_an_invalid_spec_fails_once_and_is_recorded(world: World) -> None:
    world.session("s1", repos=[{"url": "https://a/x/app"}, {"url": "https://b/y/app.git"}])
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["phase"] == "Failed"
    assert "spec.repos[1].path" in world.condition("s1", "Ready")["message"]
    world.kube.writes.clear()
    await world.reconcile("s1")
    assert world.kube.writes == []  # finished: nothing more to write


async def test_a_failed_attempt_retries_in_place_through_the_pending_move(world: World) -> None:
    """The end writes status.pendingMove (stay); the next placement, after the backoff,
    prefers the same account over a higher-priority one that appeared meanwhile."""
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", failed(), code=1, seconds=10)
    await world.reconcile("s1")
    status = world.status("s1")
    assert status["pendingMove"] == {
        "reason": "AttemptFailed",
        "message": status["pendingMove"]["message"],
        "leave": False,
    }
    assert status["phase"] == "Pending"  # backing off
    world.account("bob", priority=10)
    world.clock.advance(Settings().retry.base_backoff.total_seconds())
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["account"], status["attempt"], status["swapCount"]) == ("alice", 2, 0)
    assert "pendingMove" not in status


async def test_a_pod_created_before_a_crash_is_adopted_with_its_attempt(world: World) -> None:
    """A pass created s1-3 on bob and crashed before recording it: the next pass records that
    attempt as it is (number 3, a swap with no decision behind it) instead of making one."""
    world.account("alice")
    world.account("bob")
    world.session("s1")
    await world.reconcile("s1")
    world.run_pod("s1-1")
    world.pods[(NS, "s1")] = [LivePod(name="s1-3", account="bob", attempt=3)]
    world.kube.put("pods", {"metadata": {"namespace": NS, "name": "s1-3"}})
    world.kube.writes.clear()
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["account"], status["attempt"], status["podName"]) == ("bob", 3, "s1-3")
    assert status["swapCount"] == 1
    assert status["swaps"][-1]["reason"] == "Moved"
    assert ("create", "pods", "s1-2") not in world.kube.verbs()


async def test_a_pod_the_api_server_refuses_is_recorded_and_tried_again_only_later(
    world: World,
) -> None:
    """Pod Security (or a quota, a webhook) refuses the pod as it is: the pass writes why and
    comes back after the longest backoff, instead of failing and retrying at once."""
    refusal = 'pods "s1-1" is forbidden: violates PodSecurity "restricted:latest": seccompProfile'
    world.kube.refuse_create["pods"] = KubeError(403, refusal, "Forbidden")
    errors = metrics.reconcile_errors.labels("AgentSession")._value.get()
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    assert world.kube.verbs()[-2:] == [
        ("create", "pods", "s1-1"),
        ("patch-status", "agentsessions", "s1"),
    ]
    scheduled = world.condition("s1", "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "PodCreateFailed")
    assert "violates PodSecurity" in scheduled["message"]
    assert world.status("s1")["phase"] == "Pending"
    assert world.events[-1][:2] == ("Warning", "PodCreateFailed")
    due = world.rt.wakeups.pending(("session", NS, "s1"))
    assert due == world.clock.now + world.rt.settings.retry.max_backoff
    assert metrics.reconcile_errors.labels("AgentSession")._value.get() == errors + 1
    # The refusal lifted (a namespace label changed): the next pass creates the pod.
    del world.kube.refuse_create["pods"]
    await world.reconcile("s1")
    assert world.status("s1")["phase"] == "Running"


async def test_a_pod_create_the_api_server_fails_transiently_is_retried_soon(
    world: World,
) -> None:
    world.kube.refuse_create["pods"] = KubeError(503, "etcd leader changed", "ServiceUnavailable")
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    due = world.rt.wakeups.pending(("session", NS, "s1"))
    assert due == world.clock.now + world.rt.settings.retry.base_backoff / 5


async def test_a_session_whose_workspace_claim_is_gone_fails_instead_of_starting_blank(
    world: World,
) -> None:
    world.account("alice", priority=10)
    world.account("bob")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", walled(), code=75)
    del world.kube.objects[("persistentvolumeclaims", "s1-workspace")]
    world.kube.writes.clear()
    await world.reconcile("s1")
    # No new claim and no pod: the status says why, once.
    assert ("create", "pods", "s1-2") not in world.kube.verbs()
    assert ("create", "persistentvolumeclaims", "s1-workspace") not in world.kube.verbs()
    status = world.status("s1")
    assert (status["phase"], status["result"]["reason"]) == ("Failed", "WorkspaceLost")
    ready = world.condition("s1", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "WorkspaceLost")
    assert "s1-workspace is gone" in ready["message"]
    assert world.events[-1][:2] == ("Warning", "WorkspaceLost")


async def test_a_failed_credential_init_container_is_a_failed_attempt_that_says_so(
    world: World,
) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.pod("s1-1")["status"] = {
        "phase": "Failed",
        "initContainerStatuses": [
            {"name": "credential", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
        ],
        "containerStatuses": [
            {"name": "agent", "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    }
    world.kube.writes.clear()
    await world.reconcile("s1")
    assert ("patch-status", "claudeaccounts", "alice") not in world.kube.verbs()
    last = world.status("s1")["lastOutcome"]
    assert last["outcome"] == "failed"
    assert "credential init container exited 1" in last["detail"]
    assert world.status("s1")["retryAt"]


@pytest.mark.parametrize(
    ("error", "backoff"),
    [
        pytest.param(KubeError(422, "status.result.summary: Too long", "Invalid"), "max",
                     id="invalid-is-refused"),
        pytest.param(KubeError(403, "forbidden", "Forbidden"), "max", id="forbidden-is-refused"),
        pytest.param(KubeConflict(409, "the object has been modified", "Conflict"), "fifth",
                     id="conflict-retries-soon"),
        pytest.param(KubeError(500, "etcdserver: timeout", "InternalError"), "fifth",
                     id="server-error-retries-soon"),
    ],
)  # fmt: skip
async def test_a_write_the_server_refuses_as_it_is_is_not_retried_in_a_tight_loop(
    world: World, error: KubeError, backoff: str
) -> None:
    world.kube.refuse_session_status = error
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")  # the pass fails at its status write; reconcile() catches it
    retry = world.rt.settings.retry
    expected = retry.max_backoff if backoff == "max" else retry.base_backoff / 5
    assert world.rt.wakeups.pending(("session", NS, "s1")) == world.clock.now + expected
