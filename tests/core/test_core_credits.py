"""Usage credits in the decision core: what a spent credit or a model that needs credits does
to the session (it moves, never fails) and to its account (a wall until the refresh time,
until the recheck or a new Secret, or no wall at all), and what the operator reads from a
termination message that reports one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from headroom.contract.termination import (
    CREDITS_WINDOW,
    EXIT_CODES,
    MODEL_CREDITS_WINDOW,
    Outcome,
    TerminationMessage,
    encode,
)
from headroom.core.accounts import (
    Account,
    AccountPhase,
    ModelCredit,
    account_state,
    unavailable_until,
    walled,
)
from headroom.core.outcome import AttemptEnd, ContainerExit, classify
from headroom.core.placement import AuthPath, NoHeadroom, Placed, Request, place
from headroom.core.reasons import FinishReason, MoveReason
from headroom.core.session import (
    FailoverPolicy,
    Finish,
    NoteModelCredits,
    PendingMove,
    Progress,
    Reschedule,
    RetryPolicy,
    SessionPhase,
    WallAccount,
    after_attempt,
    next_request,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
REFRESH = datetime(2026, 12, 21, 16, 54, 33, tzinfo=UTC)
POLICY = FailoverPolicy(cooldown=timedelta(minutes=5), confirmations=2, max_swaps=3)
RETRY = RetryPolicy(credits_recheck=timedelta(hours=2), min_wall=timedelta(seconds=30))
FRESH = Progress(attempt=2, account="alice", suspicions=1, failures=2)
EVIDENCE = "rate_limit_event status=rejected credits reason=out_of_credits claim=overage"


def credits(resets_at: datetime | None = REFRESH, window: str = CREDITS_WINDOW) -> AttemptEnd:
    return AttemptEnd(
        Outcome.WALLED, evidence=EVIDENCE, window=window, resets_at=resets_at, detail="why"
    )


def test_spent_credit_with_a_refresh_time_walls_until_then_and_moves() -> None:
    decision = after_attempt(FRESH, credits(), POLICY, RETRY, NOW)

    assert decision.effect == WallAccount("alice", REFRESH, CREDITS_WINDOW, EVIDENCE)
    assert isinstance(decision.step, Reschedule) and decision.step.leave
    assert decision.step.reason == MoveReason.CREDITS_SPENT
    assert (
        "usage credit" in decision.step.message and "2026-12-21T16:54:33Z" in decision.step.message
    )
    assert (decision.progress.suspicions, decision.progress.failures) == (0, 0)


def test_spent_credit_without_a_refresh_time_walls_until_the_recheck_or_a_new_secret() -> None:
    decision = after_attempt(FRESH, credits(resets_at=None), POLICY, RETRY, NOW)

    assert decision.effect == WallAccount(
        "alice", NOW + timedelta(hours=2), CREDITS_WINDOW, EVIDENCE, until_secret_changes=True
    )
    assert isinstance(decision.step, Reschedule) and decision.step.leave
    assert decision.step.reason == MoveReason.CREDITS_SPENT
    assert "Secret changes" in decision.step.message


def test_a_refresh_time_already_past_still_walls_for_the_minimum() -> None:
    decision = after_attempt(FRESH, credits(resets_at=NOW - timedelta(hours=1)), POLICY, RETRY, NOW)
    assert isinstance(decision.effect, WallAccount)
    assert decision.effect.until == NOW + timedelta(seconds=30)


def test_a_recheck_shorter_than_the_minimum_wall_is_raised_to_it() -> None:
    retry = replace(RETRY, credits_recheck=timedelta(0))
    decision = after_attempt(FRESH, credits(resets_at=None), POLICY, retry, NOW)
    assert isinstance(decision.effect, WallAccount)
    assert decision.effect.until == NOW + timedelta(seconds=30)


def test_a_huge_recheck_saturates_instead_of_overflowing() -> None:
    retry = replace(RETRY, credits_recheck=timedelta(days=999_999_999))
    decision = after_attempt(FRESH, credits(resets_at=None), POLICY, retry, NOW)
    assert isinstance(decision.effect, WallAccount)
    assert decision.effect.until.year == 9999


def test_a_model_that_needs_credits_moves_the_session_and_walls_nothing() -> None:
    decision = after_attempt(FRESH, credits(None, MODEL_CREDITS_WINDOW), POLICY, RETRY, NOW)

    assert decision.effect == NoteModelCredits("alice", EVIDENCE, "why")
    assert isinstance(decision.step, Reschedule) and decision.step.leave
    assert decision.step.reason == MoveReason.MODEL_NEEDS_CREDITS


@pytest.mark.parametrize("window", [CREDITS_WINDOW, MODEL_CREDITS_WINDOW])
@pytest.mark.parametrize("resets_at", [REFRESH, None])
def test_credits_are_never_a_session_failure_nor_a_throttle(
    window: str, resets_at: datetime | None
) -> None:
    """However many times in a row, and inside the cooldown after a swap too."""
    cooling = replace(FRESH, swap_count=1, last_swap_at=NOW - timedelta(seconds=10))
    for progress in (FRESH, cooling, replace(FRESH, failures=99, suspicions=99)):
        decision = after_attempt(progress, credits(resets_at, window), POLICY, RETRY, NOW)
        assert isinstance(decision.step, Reschedule), decision
        assert decision.step.leave and decision.step.not_before is None
        assert decision.step.reason in (MoveReason.CREDITS_SPENT, MoveReason.MODEL_NEEDS_CREDITS)


@pytest.mark.parametrize("window", [CREDITS_WINDOW, MODEL_CREDITS_WINDOW])
def test_at_the_swap_limit_a_credit_wall_ends_the_session_as_any_wall_does(window: str) -> None:
    limit = replace(FRESH, swap_count=3)
    decision = after_attempt(limit, credits(None, window), POLICY, RETRY, NOW)
    assert isinstance(decision.step, Finish)
    assert (decision.step.phase, decision.step.reason) == (
        SessionPhase.FAILED,
        FinishReason.SWAP_LIMIT_REACHED,
    )
    assert decision.effect is not None  # the account still learns about its credit


def test_a_plan_wall_without_a_reset_is_still_only_a_suspicion() -> None:
    end = AttemptEnd(Outcome.WALLED, evidence="x", window="five_hour", resets_at=None)
    decision = after_attempt(Progress(attempt=1, account="alice"), end, POLICY, RETRY, NOW)
    assert isinstance(decision.step, Reschedule) and not decision.step.leave
    assert decision.step.reason == MoveReason.THROTTLED


# --- the account ---------------------------------------------------------------------------

ALICE = Account("team", "alice", credentials_hash="sha256:aaa")


def test_a_bound_wall_holds_while_the_secret_holds_the_same_credential() -> None:
    account = replace(
        ALICE, walled_until=NOW + timedelta(hours=1), wall_window=CREDITS_WINDOW,
        wall_hash="sha256:aaa",
    )  # fmt: skip
    assert walled(account, NOW)
    assert account_state(account, NOW).phase is AccountPhase.WALLED
    state = account_state(account, NOW)
    assert state.reason == "CreditsSpent" and "Secret" in state.message
    assert unavailable_until(account, NOW) == NOW + timedelta(hours=1)


def test_a_new_secret_ends_a_bound_wall_at_once() -> None:
    account = replace(
        ALICE, walled_until=NOW + timedelta(hours=1), wall_hash="sha256:aaa",
        credentials_hash="sha256:bbb",
    )  # fmt: skip
    assert not walled(account, NOW)
    assert account_state(account, NOW).phase is AccountPhase.AVAILABLE
    assert unavailable_until(account, NOW) is None


def test_an_unbound_wall_ignores_the_secret_and_every_wall_ends_on_time() -> None:
    plan = replace(ALICE, walled_until=NOW + timedelta(hours=1), credentials_hash="sha256:bbb")
    assert walled(plan, NOW)
    bound = replace(plan, wall_hash="sha256:bbb")
    assert not walled(bound, NOW + timedelta(hours=1))
    assert not walled(replace(ALICE, wall_hash="sha256:aaa"), NOW)  # no wall time: no wall


def test_a_drill_still_walls_an_account_whose_bound_wall_the_secret_ended() -> None:
    account = replace(
        ALICE, walled_until=NOW + timedelta(hours=1), wall_hash="sha256:old",
        drill_until=NOW + timedelta(minutes=2),
    )  # fmt: skip
    assert account_state(account, NOW).reason == "Drill"
    assert unavailable_until(account, NOW) == NOW + timedelta(minutes=2)


# --- the termination message as the operator reads it --------------------------------------


@pytest.mark.parametrize("window", [CREDITS_WINDOW, MODEL_CREDITS_WINDOW])
def test_a_credit_wall_without_a_reset_is_read_as_reported(window: str) -> None:
    text = encode(TerminationMessage(Outcome.WALLED, window=window, evidence=EVIDENCE))
    end = classify(ContainerExit(EXIT_CODES[Outcome.WALLED], "Error", text))
    assert (end.outcome, end.window, end.resets_at) == (Outcome.WALLED, window, None)


def test_a_credit_wall_with_a_refresh_time_is_read_with_it() -> None:
    message = TerminationMessage(
        Outcome.WALLED, window=CREDITS_WINDOW, resets_at="2026-12-21T16:54:33Z"
    )
    end = classify(ContainerExit(75, "Error", encode(message)))
    assert end.resets_at == REFRESH


def test_a_credit_wall_with_the_wrong_exit_code_is_a_failure() -> None:
    text = encode(TerminationMessage(Outcome.WALLED, window=CREDITS_WINDOW))
    end = classify(ContainerExit(1, "Error", text))
    assert end.outcome is Outcome.FAILED and end.window is None


# --- placement after a model that needs credits --------------------------------------------


def test_after_a_model_that_needs_credits_the_session_leaves_and_carries_its_model() -> None:
    move = PendingMove(MoveReason.MODEL_NEEDS_CREDITS, "lacks credits", leave=True)
    request = next_request(None, None, "alice", move, "claude-fable-5-1")
    assert (request.avoid, request.prefer, request.model) == ("alice", None, "claude-fable-5-1")


def test_placement_never_falls_back_to_an_account_that_lacks_the_models_credits() -> None:
    """The account's record (status.modelCredits) keeps the session off it even as a last
    resort, and names no reset: only the recheck or a new Secret ends it."""
    learned = ModelCredit("claude-fable-5-1", NOW, NOW + timedelta(hours=1), "a")
    alice = Account("team", "alice", credentials_hash="a", model_credits=(learned,))
    bob = Account("team", "bob", credentials_hash="b")
    fable = Request(None, avoid="alice", model="claude-fable-5-1")
    only_alice = place([alice], {}, fable, NOW)
    assert isinstance(only_alice, NoHeadroom)
    assert "alice lacks the usage credits claude-fable-5-1 needs" in only_alice.message
    assert only_alice.earliest_reset is None
    # Plain leaving still goes back to the account when it is the only one.
    assert place([alice], {}, Request(None, avoid="alice"), NOW) == Placed(
        "alice", AuthPath.PRIMARY
    )
    assert place([alice, bob], {}, fable, NOW) == Placed("bob", AuthPath.PRIMARY)


def test_an_account_lacking_the_models_credits_and_walled_names_no_earliest_reset() -> None:
    learned = ModelCredit("opus", NOW, NOW + timedelta(hours=1), "a")
    alice = Account(
        "team", "alice", credentials_hash="a", walled_until=NOW + timedelta(hours=1),
        model_credits=(learned,),
    )  # fmt: skip
    result = place([alice], {}, Request(None, model="opus"), NOW)
    assert isinstance(result, NoHeadroom) and result.earliest_reset is None
