"""Failover through the real apiserver: walls, throttles, 500 bursts, cooldown, 401s, waiting."""

from __future__ import annotations

import base64

import pytest
from tests.support.operator import Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration


def test_walled_session_moves_to_most_headroom_and_resumes_same_conversation(
    scene: Scene, operator
) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    scene.account("carol")
    first = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    assert first["account"] == "alice"
    scene.finish_pod(
        first["podName"],
        Outcome.WALLED,
        window="five_hour",
        resets_at=in_seconds(3600),
        utilization={"five_hour": 1.0},
        evidence="You've hit your 5-hour limit",
    )
    moved = scene.wait_running("s1", attempt=2)
    assert moved["account"] in {"bob", "carol"}
    assert moved["claudeSessionId"] == first["claudeSessionId"]
    assert moved["swapCount"] == 1
    swap = moved["swaps"][-1]
    assert (swap["from"], swap["to"], swap["reason"], swap["window"]) == (
        "alice",
        moved["account"],
        "Walled",
        "five_hour",
    )
    pod = scene.pod(moved["podName"])
    assert pod is not None
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["HEADROOM_EXPECT_TRANSCRIPT"] == "true"  # the runner will --resume
    assert env["HEADROOM_SESSION_ID"] == first["claudeSessionId"]
    alice = scene.wait_phase("claudeaccounts", "alice", "Walled")
    assert alice["lastSignal"]["type"] == "walled"
    assert alice["lastSignal"]["window"] == "five_hour"
    assert alice["lastSignal"]["session"] == "s1"
    assert alice["walledUntil"]
    assert any(w["name"] == "five_hour" and w["status"] == "rejected" for w in alice["windows"])
    # A pass posts its Events once its status write went through: a moment after it.
    wait_for(
        "the Placed, Walled and Swapped Events",
        lambda: {"Placed", "Walled", "Swapped"} <= {e.reason for e in scene.events()},
    )
    assert (old := scene.pod(first["podName"])) is None or old.metadata.deletion_timestamp


def test_most_headroom_wins_among_equal_priority(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    scene.account("carol")
    wait_for(
        "accounts ready",
        lambda: scene.status("claudeaccounts", "carol").get("phase") == "Available",
    )
    # bob's window is 80% used, carol's 10%: recorded as the operator records signals
    for name, used in (("bob", 0.8), ("carol", 0.1)):
        window = {"name": "five_hour", "status": "allowed", "utilization": used}
        window["resetsAt"] = in_seconds(7200)
        scene.custom.patch_namespaced_custom_object_status(
            "headroom.dev", "v1alpha1", scene.ns, "claudeaccounts", name,
            {"status": {"windows": [window]}},
        )  # fmt: skip
    wait_for("windows recorded", lambda: scene.status("claudeaccounts", "bob").get("windows"))
    first = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    scene.finish_pod(
        first["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600)
    )
    assert scene.wait_running("s1", attempt=2)["account"] == "carol"


def test_500_burst_is_not_a_wall(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    status = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    # The runner reports a run that died on server errors as failed (no reset, not a limit),
    # even when the error text says "rate limit".
    scene.finish_pod(
        status["podName"],
        Outcome.FAILED,
        detail="API Error: 500 rate limit exceeded",
        evidence="500 rate limit",
    )
    again = scene.wait_running("s1", attempt=2)
    assert again["account"] == "alice"  # retried in place
    assert again["swapCount"] == 0
    assert scene.status("claudeaccounts", "alice")["phase"] == "Available"


def test_one_throttle_retries_in_place_two_in_a_row_swap(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    s = scene.wait_running(
        scene.session("s1", failover={"confirmations": 2, "cooldown": "1m"})["metadata"]["name"],
        attempt=1,
    )
    scene.finish_pod(s["podName"], Outcome.THROTTLED, evidence="429 retry-after")
    s = scene.wait_running("s1", attempt=2)
    assert (s["account"], s["swapCount"], s["suspicions"]) == ("alice", 0, 1)
    assert scene.status("claudeaccounts", "alice")["lastSignal"]["type"] == "throttled"
    scene.finish_pod(s["podName"], Outcome.THROTTLED, evidence="429 retry-after")
    s = scene.wait_running("s1", attempt=3)
    assert (s["account"], s["swapCount"], s["swaps"][-1]["reason"]) == (
        "bob",
        1,
        "ThrottleConfirmed",
    )
    assert scene.wait_phase("claudeaccounts", "alice", "Walled")


def test_cooldown_stops_ping_pong(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    s = scene.wait_running(
        scene.session("s1", failover={"confirmations": 1, "cooldown": "10m"})["metadata"]["name"],
        attempt=1,
    )
    scene.finish_pod(s["podName"], Outcome.THROTTLED)  # confirmations 1: this swaps
    s = scene.wait_running("s1", attempt=2)
    assert (s["account"], s["swapCount"]) == ("bob", 1)
    scene.finish_pod(s["podName"], Outcome.THROTTLED)  # inside the cooldown: no swap back
    s = scene.wait_running("s1", attempt=3)
    assert (s["account"], s["swapCount"]) == ("bob", 1)
    scene.finish_pod(s["podName"], Outcome.WALLED, window="seven_day", resets_at=in_seconds(600))
    # a structured wall with a reset time moves even inside the cooldown ... but alice is
    # still walled from the confirmed throttle, so the session waits for the earliest reset
    waiting = scene.wait_phase("agentsessions", "s1", "Waiting")
    assert waiting["waitingUntil"]


def test_startup_401_blocks_account_until_secret_changes(scene: Scene, operator) -> None:
    scene.account("alice", priority=5, token="old-alice-token")
    scene.account("bob")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    scene.finish_pod(s["podName"], Outcome.AUTH_FAILED, evidence="401 authentication_failed")
    moved = scene.wait_running("s1", attempt=2)
    assert (moved["account"], moved["failures"]) == ("bob", 0)  # not counted as a failure
    alice = scene.wait_phase("claudeaccounts", "alice", "AuthFailed")
    creds = scene.condition("claudeaccounts", "alice", "CredentialsValid")
    assert (creds["status"], creds["reason"]) == ("False", "AuthenticationFailed")
    assert alice["authFailedHash"] == alice["credentialsHash"]
    assert any(e.reason == "AuthFailed" and e.type == "Warning" for e in scene.events())
    scene.session("s2")  # no new placements on alice
    assert scene.wait_running("s2")["account"] == "bob"
    scene.secret("alice-claude", {"token": "new-alice-token"})  # rotated by the user
    healed = scene.wait_phase("claudeaccounts", "alice", "Available")
    assert healed["credentialsHash"] != alice["credentialsHash"]
    runtime = scene.core.read_namespaced_secret(healed["runtimeSecretName"], scene.ns)
    assert base64.b64decode(runtime.data["token"]) == b"new-alice-token"
    scene.session("s3")
    assert scene.wait_running("s3")["account"] == "alice"


def test_all_walled_waits_with_no_headroom_and_resumes_at_reset(scene: Scene, operator) -> None:
    scene.account("alice", max_sessions=1)
    scene.account("bob", max_sessions=1)
    a = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    b = scene.wait_running(scene.session("s2")["metadata"]["name"], attempt=1)
    reset = in_seconds(6)
    scene.finish_pod(a["podName"], Outcome.WALLED, window="five_hour", resets_at=reset)
    scene.finish_pod(b["podName"], Outcome.WALLED, window="five_hour", resets_at=reset)
    for name in ("s1", "s2"):
        waiting = scene.wait_phase("agentsessions", name, "Waiting")
        assert waiting["waitingUntil"] == reset
        cond = scene.condition("agentsessions", name, "Ready")
        assert cond["reason"] == "NoHeadroom" and reset in cond["message"]
    # nobody touches anything: the operator wakes them at the reset by itself
    for name in ("s1", "s2"):
        resumed = scene.wait_running(name, attempt=2, timeout=40)
        assert resumed["claudeSessionId"]
    assert {scene.status("claudeaccounts", n)["phase"] for n in ("alice", "bob")} == {"Available"}


def test_failed_attempts_are_retried_then_fail_with_the_reason(scene: Scene, operator) -> None:
    scene.account("alice")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    for attempt in (1, 2):
        scene.finish_pod(s["podName"], Outcome.FAILED, detail="resume found no conversation")
        s = scene.wait_running("s1", attempt=attempt + 1)
    scene.finish_pod(s["podName"], Outcome.FAILED, detail="resume found no conversation")
    failed = scene.wait_phase("agentsessions", "s1", "Failed")
    ready = scene.condition("agentsessions", "s1", "Ready")
    assert ready["reason"] == "RetriesExhausted"
    assert "resume found no conversation" in ready["message"]
    assert failed["failures"] == 3


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (None, 137, "OOMKilled"),
        ("{not json", 75, "Error"),
        ('{"version":1,"outcome":"walled"}', 75, "Error"),  # no resetsAt: not a wall
        (
            '{"version":1,"outcome":"walled","window":"five_hour","resetsAt":"2030-01-01T00:00:00Z"}',
            1,
            "Error",
        ),
        ("x" * 5000, 75, "Error"),
    ],
    ids=["no-message-oom", "not-json", "walled-without-reset", "exit-code-mismatch", "oversized"],
)
def test_unreadable_termination_is_failed_never_a_wall(
    scene: Scene, operator, raw, code, reason
) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    scene.finish_pod(s["podName"], None, exit_code=code, raw_message=raw, reason=reason)
    again = scene.wait_running("s1", attempt=2)
    assert again["account"] == "alice" and again["swapCount"] == 0
    assert again["lastOutcome"]["outcome"] == "failed"
    assert again["lastOutcome"]["detail"]
    assert scene.status("claudeaccounts", "alice")["phase"] == "Available"
    assert operator.alive()
