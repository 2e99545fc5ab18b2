"""Per-model walls, remembered model credits and warnings through the reconcilers, against the
in-memory Kube at chosen times: what status, conditions, Events and metrics say, and which
sessions then avoid the account."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from tests.reconcilers.conftest import NS, World
from tests.reconcilers.test_account_reconciler import TOKEN, at, available
from tests.reconcilers.test_credits_reconciler import credits, digest

from headroom.contract.termination import MODEL_CREDITS_WINDOW, Outcome, TerminationMessage

OPUS_EVIDENCE = "rate_limit_event status=rejected rateLimitType=seven_day_opus resetsAt=1796411788"


def opus_wall(reset_in: int = 3 * 86400) -> TerminationMessage:
    return TerminationMessage(
        Outcome.WALLED,
        window="seven_day_opus",
        resets_at=at(reset_in),
        transcript=True,
        evidence=OPUS_EVIDENCE,
        detail="The account reached its seven_day_opus usage limit.",
    )


async def roomy_alice(world: World) -> None:
    world.secret("alice", token=TOKEN)
    world.new_account("alice", maxSessions=3)
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"


async def opus_session_on_alice_with_bob_free(world: World) -> None:
    await available(world, "alice")
    world.session("s1", model="opus")
    await world.reconcile("s1")
    assert world.status("s1")["account"] == "alice"
    await available(world, "bob", token="sk-ant-oat01-bob-0000")


async def test_a_per_model_wall_moves_the_session_and_leaves_the_account_available(
    world: World,
) -> None:
    await opus_session_on_alice_with_bob_free(world)
    world.end_pod("s1-1", opus_wall(), code=75)
    await world.reconcile("s1")
    await world.reconcile("s1")

    assert world.status("s1")["account"] == "bob"
    assert world.status("s1")["swaps"][-1]["reason"] == "ModelWalled"
    status = world.account_status("alice")
    assert "walledUntil" not in status
    [window] = [w for w in status["windows"] if w["name"] == "seven_day_opus"]
    assert (window["status"], window["resetsAt"]) == ("rejected", at(3 * 86400))
    assert status["lastSignal"]["type"] == "model_walled"
    [event] = [e for e in world.events if e[1] == "ModelWalled" and "avoid the account" in e[2]]
    assert event[0] == "Warning" and "others still run there" in event[2]

    await world.reconcile_account("alice")
    status = world.account_status("alice")
    assert status["phase"] == "Available"
    ready = world.account_condition("alice", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Available")
    assert "seven_day_opus (Opus models) until " + at(3 * 86400) in ready["message"]
    limited = world.account_condition("alice", "ModelLimited")
    assert (limited["status"], limited["reason"]) == ("True", "ModelLimitReached")
    assert world.account_condition("alice", "Walled")["status"] == "False"
    assert world.rt.wakeups.pending(("account", NS, "alice")) == world.clock() + timedelta(days=3)


async def test_after_a_per_model_wall_only_sessions_of_that_model_avoid_the_account(
    world: World,
) -> None:
    await opus_session_on_alice_with_bob_free(world)
    world.end_pod("s1-1", opus_wall(), code=75)
    await world.reconcile("s1")
    await world.reconcile("s1")  # s1 now on bob (maxSessions 1)
    await world.reconcile_account("alice")

    world.session("s2-opus", model="claude-opus-5-5")
    await world.reconcile("s2-opus")
    waiting = world.status("s2-opus")
    assert waiting["phase"] == "Waiting"
    assert "alice reached its seven_day_opus limit until" in waiting["waitingMessage"]
    assert waiting["waitingUntil"] == at(3 * 86400)

    world.session("s3-default")  # an OAuth token's default model is Sonnet
    await world.reconcile("s3-default")
    assert world.status("s3-default")["account"] == "alice"


async def test_a_model_that_needs_credits_is_remembered_for_every_session_of_that_model(
    world: World,
) -> None:
    await roomy_alice(world)
    world.session("s1", model="claude-fable-5-1")
    await world.reconcile("s1")
    world.end_pod("s1-1", credits(window=MODEL_CREDITS_WINDOW), code=75)
    await world.reconcile("s1")

    status = world.account_status("alice")
    assert status["modelCredits"] == [
        {
            "model": "claude-fable-5-1",
            "learnedAt": at(0),
            "retryAt": at(3600),
            "credentialsHash": digest(TOKEN),
        }
    ]
    await world.reconcile_account("alice")
    limited = world.account_condition("alice", "ModelLimited")
    assert (
        limited["status"] == "True" and "claude-fable-5-1 needs usage credits" in limited["message"]
    )

    world.session("s2", model="Claude-Fable-5-1")  # another session, same model
    await world.reconcile("s2")
    assert world.status("s2")["phase"] == "Waiting"
    assert (
        "alice lacks the usage credits claude-fable-5-1 needs"
        in world.status("s2")["waitingMessage"]
    )
    world.session("s3", model="sonnet")
    await world.reconcile("s3")
    assert world.status("s3")["account"] == "alice"


async def test_remembered_model_credits_end_at_the_recheck(world: World) -> None:
    await roomy_alice(world)
    world.session("s1", model="claude-fable-5-1")
    await world.reconcile("s1")
    world.end_pod("s1-1", credits(window=MODEL_CREDITS_WINDOW), code=75)
    await world.reconcile("s1")
    await world.reconcile_account("alice")
    assert world.rt.wakeups.pending(("account", NS, "alice")) == world.clock() + timedelta(hours=1)

    world.clock.advance(3601)
    await world.reconcile_account("alice")
    assert "modelCredits" not in world.account_status("alice")
    assert world.account_condition("alice", "ModelLimited")["status"] == "False"
    world.session("s2", model="claude-fable-5-1")
    await world.reconcile("s2")
    assert world.status("s2")["account"] == "alice"


async def test_remembered_model_credits_end_when_the_secret_changes(world: World) -> None:
    await roomy_alice(world)
    world.session("s1")  # the default model needed credits (a seat without them)
    await world.reconcile("s1")
    world.end_pod("s1-1", credits(window=MODEL_CREDITS_WINDOW), code=75)
    await world.reconcile("s1")
    assert world.account_status("alice")["modelCredits"][0]["model"] == "default"

    world.clock.advance(60)
    world.secret("alice", token="sk-ant-oat01-alice-with-credits")
    await world.reconcile_account("alice")
    assert "modelCredits" not in world.account_status("alice")
    world.session("s2")
    await world.reconcile("s2")
    assert world.status("s2")["account"] == "alice"


def _warning_value(window: str) -> float | None:
    return REGISTRY.get_sample_value(
        "headroom_account_window_warning", {"namespace": NS, "account": "alice", "window": window}
    )


async def test_a_warning_from_a_completed_attempt_marks_the_window_and_the_metric(
    world: World,
) -> None:
    await available(world, "alice")
    world.session("s1")
    await world.reconcile("s1")
    done = TerminationMessage(
        Outcome.COMPLETED,
        transcript=True,
        utilization={"five_hour": 0.86, "seven_day": 0.1},
        warnings={"five_hour": 0.8},
        summary="Done.",
    )
    world.end_pod("s1-1", done, code=0)
    await world.reconcile("s1")
    windows = {w["name"]: w for w in world.account_status("alice")["windows"]}
    assert windows["five_hour"]["warning"] is True
    assert windows["five_hour"]["surpassedThreshold"] == 0.8
    assert "warning" not in windows["seven_day"]
    await world.reconcile_account("alice")
    assert (_warning_value("five_hour"), _warning_value("seven_day")) == (1.0, 0.0)


async def test_a_per_model_wall_that_several_sessions_report_is_recorded_once(
    world: World,
) -> None:
    await roomy_alice(world)
    for name in ("s1", "s2"):
        world.session(name, model="opus")
        await world.reconcile(name)
        assert world.status(name)["account"] == "alice"
    for name in ("s1", "s2"):
        world.end_pod(f"{name}-1", opus_wall(), code=75)
        await world.reconcile(name)
    account_events = [
        e for e in world.events if e[1] == "ModelWalled" and "avoid the account" in e[2]
    ]
    assert len(account_events) == 1
    assert world.status("s2")["phase"] == "Waiting"  # its model cannot run on alice
