"""The session machine around placements: `after_end` (an attempt's end, evictions and limits
included), the pending move kept in status between the decision and the next placement,
the placement request built from it, and attempt numbering by `record_swap`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headroom.contract import crd
from headroom.contract.termination import Outcome
from headroom.core.outcome import AttemptEnd
from headroom.core.placement import Request
from headroom.core.reasons import FinishReason, MoveReason
from headroom.core.session import (
    SWAP_REASON_UNKNOWN,
    FailoverPolicy,
    Finish,
    PendingMove,
    Progress,
    Reschedule,
    RetryPolicy,
    SessionPhase,
    after_attempt,
    after_end,
    is_swap,
    next_attempt,
    next_request,
    record_swap,
    swap_reason,
)
from headroom.core.task import Stop

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = FailoverPolicy(cooldown=timedelta(minutes=5), confirmations=2, max_swaps=3)
RETRY = RetryPolicy()
ON_ALICE = Progress(attempt=2, account="alice")
COMPLETED = AttemptEnd(Outcome.COMPLETED)
FAILED = AttemptEnd(Outcome.FAILED, detail="boom")
WALLED = AttemptEnd(Outcome.WALLED, resets_at=NOW + timedelta(hours=1), window="five_hour")
BUDGET = Stop("BudgetExhausted", "spent")

# --- after_end --------------------------------------------------------------------------------


@pytest.mark.parametrize("end", [COMPLETED, FAILED, WALLED], ids=["completed", "failed", "walled"])
def test_without_eviction_or_limit_the_end_decides(end: AttemptEnd) -> None:
    assert after_end(ON_ALICE, end, None, POLICY, RETRY, None, NOW) == after_attempt(
        ON_ALICE, end, POLICY, RETRY, NOW
    )


@pytest.mark.parametrize("end", [COMPLETED, FAILED, WALLED], ids=["completed", "failed", "walled"])
def test_a_drill_moves_the_session_whatever_the_pod_reported(end: AttemptEnd) -> None:
    decision = after_end(ON_ALICE, end, "Drill", POLICY, RETRY, None, NOW)
    assert decision.step == Reschedule("Drill", "moved off alice by a drill", leave=True)
    assert decision.effect is None
    assert decision.progress == ON_ALICE


@pytest.mark.parametrize("end", [FAILED, WALLED, AttemptEnd(Outcome.FAILED)],
                         ids=["failed", "walled", "gone"])  # fmt: skip
def test_a_pod_lost_with_its_node_is_placed_again_without_a_failure_or_a_swap(
    end: AttemptEnd,
) -> None:
    """Whatever the pod reported on its way out (a kubelet that came back kills it; a pod
    removed by the API server reports nothing), a lost node says nothing of the agent or the
    account."""
    at_limits = Progress(attempt=4, account="alice", swap_count=3, failures=3)
    decision = after_end(at_limits, end, "NodeLost", POLICY, RETRY, None, NOW)
    assert decision.step == Reschedule(
        MoveReason.NODE_LOST, "the node of attempt 4 was lost; placing it again", leave=False
    )
    assert decision.effect is None
    assert (decision.progress.failures, decision.progress.swap_count) == (3, 3)
    assert next_request(None, None, "alice", PendingMove.of(decision.step)).prefer == "alice"


def test_a_run_that_completed_before_its_node_was_lost_stays_completed() -> None:
    step = after_end(ON_ALICE, COMPLETED, "NodeLost", POLICY, RETRY, None, NOW).step
    assert step == Finish(SessionPhase.SUCCEEDED, FinishReason.COMPLETED, "the run finished")


def test_a_pod_lost_with_its_node_still_ends_the_session_at_a_limit() -> None:
    step = after_end(ON_ALICE, FAILED, "NodeLost", POLICY, RETRY, BUDGET, NOW).step
    assert step == Finish(SessionPhase.FAILED, "BudgetExhausted", "spent")


def test_a_drill_past_the_swap_limit_fails_the_session() -> None:
    at_limit = Progress(attempt=9, account="alice", swap_count=3)
    step = after_end(at_limit, FAILED, "Drill", POLICY, RETRY, None, NOW).step
    assert isinstance(step, Finish)
    assert (step.phase, step.reason) == (SessionPhase.FAILED, "SwapLimitReached")


def test_a_pod_stopped_at_the_timeout_fails_the_session() -> None:
    step = after_end(ON_ALICE, FAILED, "TimedOut", POLICY, RETRY, None, NOW).step
    assert step == Finish(
        SessionPhase.FAILED, "TimedOut", "spec.timeout was reached while the agent ran"
    )


def test_a_limit_reached_names_itself_even_after_a_timeout_eviction() -> None:
    step = after_end(ON_ALICE, FAILED, "TimedOut", POLICY, RETRY, BUDGET, NOW).step
    assert step == Finish(SessionPhase.FAILED, "BudgetExhausted", "spent")


@pytest.mark.parametrize("eviction", [None, "TimedOut"])
def test_a_completed_run_stays_completed_at_a_limit(eviction: str | None) -> None:
    step = after_end(ON_ALICE, COMPLETED, eviction, POLICY, RETRY, BUDGET, NOW).step
    assert isinstance(step, Finish) and step.phase is SessionPhase.SUCCEEDED


def test_a_limit_ends_a_session_that_would_move() -> None:
    step = after_end(ON_ALICE, WALLED, None, POLICY, RETRY, BUDGET, NOW).step
    assert step == Finish(SessionPhase.FAILED, "BudgetExhausted", "spent")


# --- the pending move ------------------------------------------------------------------------


def test_a_pending_move_round_trips_through_status() -> None:
    move = PendingMove.of(Reschedule("Walled", "alice is walled", leave=True))
    assert move.to_status() == {"reason": "Walled", "message": "alice is walled", "leave": True}
    assert PendingMove.from_status(move.to_status()) == move


def test_a_pending_move_message_fits_its_status_field() -> None:
    move = PendingMove.of(Reschedule("AttemptFailed", "x" * (crd.DETAIL_CHARS + 5), leave=False))
    assert len(move.message) == crd.DETAIL_CHARS


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param({}, None, id="empty"),
        pytest.param({"leave": True}, PendingMove("Moved", "", True), id="no-reason"),
        pytest.param({"reason": "Throttled"}, PendingMove("Throttled", "", False), id="no-leave"),
    ],
)
def test_a_pending_move_read_from_status(raw: dict[str, object] | None, want: object) -> None:
    assert PendingMove.from_status(raw) == want


def test_the_swap_reason_comes_from_the_move() -> None:
    assert swap_reason(PendingMove("Walled", "", True)) == "Walled"
    assert swap_reason(None) == SWAP_REASON_UNKNOWN == "Moved"


SELECTOR = {"matchLabels": {"tier": "max"}}
FALLBACK = {"matchLabels": {"tier": "api"}}


@pytest.mark.parametrize(
    ("previous", "move", "avoid", "prefer"),
    [
        pytest.param(None, None, None, None, id="first-placement"),
        pytest.param("alice", None, None, None, id="no-decision-left"),
        pytest.param("alice", PendingMove("Walled", "", True), "alice", None, id="leave"),
        pytest.param("alice", PendingMove("Throttled", "", False), None, "alice", id="retry"),
        pytest.param(None, PendingMove("Walled", "", True), None, None, id="leave-nothing"),
    ],
)
def test_the_next_request_follows_the_pending_move(
    previous: str | None, move: PendingMove | None, avoid: str | None, prefer: str | None
) -> None:
    assert next_request(SELECTOR, FALLBACK, previous, move) == Request(
        SELECTOR, FALLBACK, avoid=avoid, prefer=prefer
    )


# --- attempt numbering -------------------------------------------------------------------------


def test_the_next_attempt_follows_the_last() -> None:
    assert next_attempt(Progress()) == 1
    assert next_attempt(ON_ALICE) == 3
    assert record_swap(ON_ALICE, "alice", NOW).attempt == next_attempt(ON_ALICE)


def test_an_adopted_pod_keeps_its_own_attempt_number() -> None:
    """A pass that crashed after creating attempt 4's pod: the next pass adopts it as 4."""
    after = record_swap(ON_ALICE, "bob", NOW, attempt=4)
    assert after == Progress(attempt=4, account="bob", swap_count=1, last_swap_at=NOW)


@pytest.mark.parametrize(
    ("progress", "to", "swap"),
    [
        pytest.param(Progress(), "alice", False, id="first-placement"),
        pytest.param(ON_ALICE, "alice", False, id="same-account"),
        pytest.param(ON_ALICE, "bob", True, id="other-account"),
    ],
)
def test_a_swap_is_a_start_on_another_account(progress: Progress, to: str, swap: bool) -> None:
    assert is_swap(progress, to) is swap
    assert record_swap(progress, to, NOW).swap_count == progress.swap_count + int(swap)


# --- reasons ---------------------------------------------------------------------------------


def test_every_reason_the_machine_decides_is_an_enum_member() -> None:
    """Walk every outcome through after_end: each step's reason is a MoveReason or a
    FinishReason (a failure's own cause aside), so metrics and docs list them all."""
    ends = [
        COMPLETED,
        FAILED,
        WALLED,
        AttemptEnd(Outcome.WALLED),  # no reset time: a suspicion
        AttemptEnd(Outcome.THROTTLED),
        AttemptEnd(Outcome.AUTH_FAILED),
    ]
    progresses = [
        ON_ALICE,
        Progress(attempt=2, account="alice", suspicions=1),  # a second throttle confirms
        Progress(attempt=5, account="alice", failures=3),  # retries exhausted
        Progress(attempt=9, account="alice", swap_count=3),  # at the swap limit
    ]
    reasons = {
        after_end(p, e, eviction, POLICY, RETRY, stop, NOW).step.reason
        for p in progresses
        for e in ends
        for eviction in (None, "Drill", "TimedOut")
        for stop in (None, BUDGET)
    }
    assert reasons <= set(MoveReason) | set(FinishReason)
    assert reasons >= {MoveReason.THROTTLE_CONFIRMED, FinishReason.RETRIES_EXHAUSTED}
