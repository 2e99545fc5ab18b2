"""Spent usage credits end to end through the reconcilers, against the in-memory Kube at
chosen times: the session moves (never Failed), the account's status and Walled Event say
which credit ran out, a wall without a refresh time lasts until the recheck or a new Secret,
and a model that needs credits walls nothing."""

from __future__ import annotations

import hashlib

from tests.reconcilers.conftest import NS, World
from tests.reconcilers.test_account_reconciler import TOKEN, at, available

from headroom.contract.termination import (
    CREDITS_WINDOW,
    MODEL_CREDITS_WINDOW,
    Outcome,
    TerminationMessage,
)

EVIDENCE = "rate_limit_event status=rejected credits reason=out_of_credits claim=overage"


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def credits(window: str = CREDITS_WINDOW, resets_at: str | None = None) -> TerminationMessage:
    detail = (
        "The requested model needs usage credits the account lacks (seat_tier_level_disabled)."
        if window == MODEL_CREDITS_WINDOW
        else "The account's usage credit is spent (out_of_credits), with no refresh time given."
    )
    return TerminationMessage(
        Outcome.WALLED,
        window=window,
        resets_at=resets_at,
        transcript=True,
        evidence=EVIDENCE,
        detail=detail,
    )


async def on_alice_with_bob_free(world: World) -> None:
    await available(world, "alice")
    world.session("s1")
    await world.reconcile("s1")
    assert world.status("s1")["account"] == "alice"
    await available(world, "bob", token="sk-ant-oat01-bob-0000")


async def test_a_spent_credit_without_refresh_walls_until_the_recheck_and_moves_the_session(
    world: World,
) -> None:
    await on_alice_with_bob_free(world)
    world.end_pod("s1-1", credits(), code=75)
    await world.reconcile("s1")
    await world.reconcile("s1")

    status = world.account_status("alice")
    assert status["walledUntil"] == at(3600)  # --credits-recheck defaults to 1h
    assert status["walledHash"] == digest(TOKEN)
    # No window entry without a refresh time: one would read as exhausted for ever.
    assert CREDITS_WINDOW not in [w["name"] for w in status.get("windows", [])]
    assert status["lastSignal"]["type"] == "walled"
    assert status["lastSignal"]["window"] == CREDITS_WINDOW
    assert "out_of_credits" in status["lastSignal"]["evidence"]
    walls = [e for e in world.events if e[1] == "Walled"]
    assert walls and walls[0][0] == "Warning"
    assert "window credits, usage credit spent, or until the Secret changes" in walls[0][2]
    assert "out_of_credits" in walls[0][2]
    session = world.status("s1")
    assert session["phase"] != "Failed" and session["account"] == "bob"

    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Walled"
    cond = world.account_condition("alice", "Walled")
    assert (cond["status"], cond["reason"]) == ("True", "CreditsSpent")
    assert "Secret" in cond["message"]


async def test_a_new_secret_ends_the_credit_wall_at_once(world: World) -> None:
    await on_alice_with_bob_free(world)
    world.end_pod("s1-1", credits(), code=75)
    await world.reconcile("s1")
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Walled"

    world.clock.advance(60)  # long before the recheck
    world.secret("alice", token="sk-ant-oat01-alice-with-credit")
    await world.reconcile_account("alice")
    status = world.account_status("alice")
    assert status["phase"] == "Available"
    assert "walledUntil" not in status and "walledHash" not in status  # no stale reset shown
    assert world.account_condition("alice", "Walled")["status"] == "False"
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.writes == []  # cleared once, then nothing new


async def test_the_credit_wall_without_refresh_ends_at_the_recheck(world: World) -> None:
    await on_alice_with_bob_free(world)
    world.end_pod("s1-1", credits(), code=75)
    await world.reconcile("s1")
    await world.reconcile_account("alice")
    world.clock.advance(3599)
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Walled"
    world.clock.advance(2)
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"


async def test_a_spent_credit_with_a_refresh_time_walls_until_then_whatever_the_secret(
    world: World,
) -> None:
    await on_alice_with_bob_free(world)
    world.end_pod("s1-1", credits(resets_at=at(20 * 86400)), code=75)
    await world.reconcile("s1")
    status = world.account_status("alice")
    assert (status["walledUntil"], status.get("walledHash")) == (at(20 * 86400), None)
    [window] = [w for w in status["windows"] if w["name"] == CREDITS_WINDOW]
    assert (window["status"], window["resetsAt"]) == ("rejected", at(20 * 86400))

    world.secret("alice", token="sk-ant-oat01-alice-rotated")
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Walled"


async def test_a_model_that_needs_credits_moves_the_session_and_leaves_the_account_usable(
    world: World,
) -> None:
    await on_alice_with_bob_free(world)
    world.end_pod("s1-1", credits(window=MODEL_CREDITS_WINDOW), code=75)
    await world.reconcile("s1")
    await world.reconcile("s1")

    status = world.account_status("alice")
    assert "walledUntil" not in status
    assert status["lastSignal"]["type"] == "model_credits"
    assert "window" not in status["lastSignal"]  # it would name a wall the account lacks
    # One Event on the account (the session's own move Event carries the same reason).
    [event] = [e for e in world.events if e[1] == "ModelNeedsCredits" and "other models" in e[2]]
    assert event[0] == "Warning" and "seat_tier_level_disabled" in event[2]
    assert not [e for e in world.events if e[1] == "Walled"]
    assert world.status("s1")["account"] == "bob"
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"
    signals = world.rt.roster.signals(NS, "alice")
    assert signals is None or signals.walled_until is None


async def test_with_no_other_account_a_model_that_needs_credits_waits_instead_of_looping(
    world: World,
) -> None:
    await available(world, "alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", credits(window=MODEL_CREDITS_WINDOW), code=75)
    for _ in range(3):
        await world.reconcile("s1")

    session = world.status("s1")
    assert session["phase"] == "Waiting" and session["attempt"] == 1  # no second pod on alice
    assert "lacks the usage credits" in session["waitingMessage"]
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"
