"""Per-model weekly walls, remembered model credits and early warnings through the real
apiserver and the operator as a process: status, conditions, Events, and which sessions then
avoid the account."""

from __future__ import annotations

import pytest
from tests.support.operator import Scene, in_seconds, wait_for

from headroom.contract.termination import MODEL_CREDITS_WINDOW, Outcome

pytestmark = pytest.mark.integration

# What the runner reports for the recorded CLI lines (tests/runner/data).
OPUS_EVIDENCE = "rate_limit_event status=rejected rateLimitType=seven_day_opus resetsAt=1796411788"
CREDITS_EVIDENCE = (
    "rate_limit_event status=rejected credits reason=seat_tier_level_disabled claim=None "
    "overageStatus=rejected errorCode=credits_required"
)[:120]


def condition(status: dict[str, object], kind: str) -> dict[str, str]:
    found = [c for c in status.get("conditions") or [] if c["type"] == kind]  # type: ignore[attr-defined]
    return found[0] if found else {}


def test_an_opus_wall_moves_opus_sessions_only_and_the_account_stays_available(
    scene: Scene, operator
) -> None:
    scene.account("alice", priority=5, max_sessions=3)
    scene.account("bob", max_sessions=1)
    first = scene.wait_running(scene.session("opus-1", model="opus")["metadata"]["name"], attempt=1)
    assert first["account"] == "alice"
    reset = in_seconds(3 * 86400)
    scene.finish_pod(
        first["podName"],
        Outcome.WALLED,
        window="seven_day_opus",
        resets_at=reset,
        utilization={"five_hour": 0.1},
        evidence=OPUS_EVIDENCE,
    )
    moved = scene.wait_running("opus-1", attempt=2)
    assert moved["account"] == "bob"
    assert moved["swaps"][-1]["reason"] == "ModelWalled"

    def limited() -> dict[str, object] | None:
        s = scene.status("claudeaccounts", "alice")
        return s if condition(s, "ModelLimited").get("status") == "True" else None

    alice = wait_for("alice's ModelLimited condition", limited)
    assert alice["phase"] == "Available" and "walledUntil" not in alice
    assert condition(alice, "Ready")["status"] == "True"
    assert "seven_day_opus (Opus models) until" in condition(alice, "Ready")["message"]
    [window] = [w for w in alice["windows"] if w["name"] == "seven_day_opus"]  # type: ignore[attr-defined]
    assert (window["status"], window["resetsAt"][:16]) == ("rejected", reset[:16])
    wait_for(
        "the account's ModelWalled Event",
        lambda: any(
            e.reason == "ModelWalled" and e.involved_object.kind == "ClaudeAccount"
            for e in scene.events()
        ),
    )

    # Another Opus session: bob is full, alice cannot run Opus: it waits, saying why.
    scene.session("opus-2", model="claude-opus-5-5")
    waiting = scene.wait_phase("agentsessions", "opus-2", "Waiting")
    assert "alice reached its seven_day_opus limit until" in waiting["waitingMessage"]
    assert waiting["waitingUntil"][:16] == reset[:16]
    # A session on the default model (Sonnet for an OAuth token) still runs on alice.
    sonnet = scene.wait_running(scene.session("default-1")["metadata"]["name"], attempt=1)
    assert sonnet["account"] == "alice"


def test_a_model_that_needs_credits_is_remembered_until_the_secret_changes(
    scene: Scene, operator
) -> None:
    scene.account("alice", max_sessions=3)
    first = scene.wait_running(
        scene.session("fable-1", model="claude-fable-5-1")["metadata"]["name"], attempt=1
    )
    scene.finish_pod(
        first["podName"],
        Outcome.WALLED,
        window=MODEL_CREDITS_WINDOW,
        evidence=CREDITS_EVIDENCE,
        detail="The requested model needs usage credits the account lacks.",
    )
    scene.wait_phase("agentsessions", "fable-1", "Waiting")
    alice = wait_for(
        "alice's modelCredits",
        lambda: (s := scene.status("claudeaccounts", "alice")).get("modelCredits") and s,
    )
    [entry] = alice["modelCredits"]
    assert entry["model"] == "claude-fable-5-1" and entry["retryAt"] > entry["learnedAt"]
    assert alice["phase"] == "Available"

    scene.session("fable-2", model="claude-fable-5-1")
    waiting = scene.wait_phase("agentsessions", "fable-2", "Waiting")
    assert "alice lacks the usage credits claude-fable-5-1 needs" in waiting["waitingMessage"]
    other = scene.wait_running(scene.session("sonnet-1", model="sonnet")["metadata"]["name"])
    assert other["account"] == "alice"

    scene.secret("alice-claude", {"token": "fake-alice-token-with-credits"})
    wait_for(
        "modelCredits cleared by the new Secret",
        lambda: "modelCredits" not in scene.status("claudeaccounts", "alice"),
    )
    # Both sessions of that model, the one that learned it included, run there again.
    assert scene.wait_running("fable-2")["account"] == "alice"
    assert scene.wait_running("fable-1", attempt=2)["account"] == "alice"


def test_a_warned_account_takes_sessions_only_when_no_other_has_room(
    scene: Scene, operator
) -> None:
    scene.account("alice", priority=5, max_sessions=3)
    scene.account("bob", max_sessions=1)
    first = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    assert first["account"] == "alice"
    scene.finish_pod(
        first["podName"],
        Outcome.COMPLETED,
        utilization={"five_hour": 0.86, "seven_day": 0.1},
        warnings={"five_hour": 0.8},
        summary="Done.",
    )
    scene.wait_phase("agentsessions", "s1", "Succeeded")
    alice = wait_for(
        "alice's warned five_hour window",
        lambda: (
            any(
                w.get("warning")
                for w in scene.status("claudeaccounts", "alice").get("windows") or []
            )
            and scene.status("claudeaccounts", "alice")
        ),
    )
    [window] = [w for w in alice["windows"] if w["name"] == "five_hour"]
    assert (window["status"], window["surpassedThreshold"]) == ("allowed_warning", 0.8)

    # alice ranks first by priority, but its warning puts it after bob while bob has room.
    assert scene.wait_running(scene.session("s2")["metadata"]["name"])["account"] == "bob"
    assert scene.wait_running(scene.session("s3")["metadata"]["name"])["account"] == "alice"
