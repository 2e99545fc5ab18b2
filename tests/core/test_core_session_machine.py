"""Every transition of the AgentSession machine: `after_attempt`, `evicted`, `record_swap`.

Each row states the session's progress before, what the attempt reported, and the exact
decision expected: the rewritten progress, the step (type, reason, leave, not_before) and the
effect on the account. Messages are checked for the facts a person on call needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.contract.termination import Outcome
from headroom.core.durations import parse_duration
from headroom.core.outcome import AttemptEnd
from headroom.core.session import (
    AccountEffect,
    BlockAccount,
    Decision,
    FailoverPolicy,
    Finish,
    NoteSuspicion,
    Progress,
    Reschedule,
    RetryPolicy,
    SessionPhase,
    WallAccount,
    after_attempt,
    evicted,
    record_swap,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
RESET = datetime(2026, 11, 23, 14, 0, 0, tzinfo=UTC)
POLICY = FailoverPolicy(cooldown=timedelta(minutes=5), confirmations=2, max_swaps=3)
RETRY = RetryPolicy(
    base_backoff=timedelta(seconds=10),
    max_backoff=timedelta(minutes=5),
    max_failures=3,
    suspected_wall=timedelta(minutes=15),
    min_wall=timedelta(seconds=30),
)
EVIDENCE = "You've hit your 5-hour limit"

# A session on alice, 2nd attempt, never swapped: the baseline most rows start from.
FRESH = Progress(attempt=2, account="alice")
# Swapped onto alice one minute ago: inside the 5-minute cooldown.
COOLING = Progress(
    attempt=4, account="alice", swap_count=1, last_swap_at=NOW - timedelta(minutes=1)
)
# Swapped ten minutes ago: the cooldown is over.
COOLED = Progress(
    attempt=4, account="alice", swap_count=1, last_swap_at=NOW - timedelta(minutes=10)
)
AT_LIMIT = Progress(attempt=9, account="alice", swap_count=3, last_swap_at=NOW - timedelta(hours=1))


def end(outcome: Outcome, **fields: object) -> AttemptEnd:
    return AttemptEnd(outcome, **fields)  # type: ignore[arg-type]


def walled(resets_at: datetime | None = RESET, window: str | None = "five_hour") -> AttemptEnd:
    return AttemptEnd(Outcome.WALLED, evidence=EVIDENCE, window=window, resets_at=resets_at)


THROTTLED = AttemptEnd(Outcome.THROTTLED, evidence="429 rate_limit")
AUTH = AttemptEnd(Outcome.AUTH_FAILED, evidence="401 authentication_failed")
FAILED = AttemptEnd(Outcome.FAILED, detail="claude exited 1: boom")
COMPLETED = AttemptEnd(Outcome.COMPLETED, turns=3, cost_usd=0.5)


@dataclass(frozen=True)
class Expect:
    progress: Progress
    step: type[Finish] | type[Reschedule]
    reason: str
    effect: AccountEffect | None = None
    leave: bool | None = None  # Reschedule only
    not_before: datetime | None = None  # Reschedule only
    phase: SessionPhase | None = None  # Finish only
    says: tuple[str, ...] = ()  # fragments the message must contain


def check(decision: Decision, want: Expect) -> None:
    assert decision.progress == want.progress
    assert type(decision.step) is want.step
    assert decision.step.reason == want.reason
    assert decision.effect == want.effect
    if isinstance(decision.step, Reschedule):
        assert decision.step.leave is want.leave
        assert decision.step.not_before == want.not_before
    else:
        assert decision.step.phase is want.phase
    for fragment in want.says:
        assert fragment in decision.step.message


# --- after_attempt: every outcome --------------------------------------------------------

AFTER_ATTEMPT: list[tuple[str, Progress, AttemptEnd, FailoverPolicy, RetryPolicy, Expect]] = [
    # completed
    (
        "completed-clean",
        FRESH,
        COMPLETED,
        POLICY,
        RETRY,
        Expect(FRESH, Finish, "Completed", phase=SessionPhase.SUCCEEDED),
    ),
    (
        "completed-resets-suspicions-and-failures",
        replace(FRESH, suspicions=1, failures=2),
        COMPLETED,
        POLICY,
        RETRY,
        Expect(FRESH, Finish, "Completed", phase=SessionPhase.SUCCEEDED),
    ),
    (
        "completed-in-cooldown",
        COOLING,
        COMPLETED,
        POLICY,
        RETRY,
        Expect(COOLING, Finish, "Completed", phase=SessionPhase.SUCCEEDED),
    ),
    (
        "completed-at-swap-limit",
        AT_LIMIT,
        COMPLETED,
        POLICY,
        RETRY,
        Expect(AT_LIMIT, Finish, "Completed", phase=SessionPhase.SUCCEEDED),
    ),
    # walled with a reset time: move at once, wall the account until the reset
    (
        "walled-future-reset",
        replace(FRESH, suspicions=1),
        walled(),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            leave=True,
            says=("alice", "five_hour", "2026-11-23T14:00:00Z"),
        ),
    ),
    (
        "walled-reset-in-past-gets-min-wall",
        FRESH,
        walled(resets_at=NOW - timedelta(hours=1)),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", NOW + timedelta(seconds=30), "five_hour", EVIDENCE),
            leave=True,
            says=("alice", "2026-11-23T11:00:00Z"),
        ),
    ),
    (
        "walled-reset-now-gets-min-wall",
        FRESH,
        walled(resets_at=NOW),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", NOW + timedelta(seconds=30), "five_hour", EVIDENCE),
            leave=True,
        ),
    ),
    (
        "walled-reset-inside-min-wall-gets-min-wall",
        FRESH,
        walled(resets_at=NOW + timedelta(seconds=5)),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", NOW + timedelta(seconds=30), "five_hour", EVIDENCE),
            leave=True,
        ),
    ),
    (
        "walled-reset-just-after-min-wall-kept",
        FRESH,
        walled(resets_at=NOW + timedelta(seconds=31)),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", NOW + timedelta(seconds=31), "five_hour", EVIDENCE),
            leave=True,
        ),
    ),
    (
        "walled-without-window-name",
        FRESH,
        walled(window=None),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "Walled",
            WallAccount("alice", RESET, None, EVIDENCE),
            leave=True,
            says=("alice reached its usage limit",),
        ),
    ),
    (
        "walled-inside-cooldown-still-moves",
        COOLING,
        walled(),
        POLICY,
        RETRY,
        Expect(
            COOLING,
            Reschedule,
            "Walled",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            leave=True,
        ),
    ),
    (
        "walled-one-swap-below-limit-moves",
        replace(AT_LIMIT, swap_count=2),
        walled(),
        POLICY,
        RETRY,
        Expect(
            replace(AT_LIMIT, swap_count=2),
            Reschedule,
            "Walled",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            leave=True,
        ),
    ),
    (
        "walled-at-swap-limit-fails-but-walls-account",
        replace(AT_LIMIT, suspicions=1),
        walled(),
        POLICY,
        RETRY,
        Expect(
            AT_LIMIT,
            Finish,
            "SwapLimitReached",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            phase=SessionPhase.FAILED,
            says=("alice reached its five_hour usage limit", "moved 3 times", "maxSwaps"),
        ),
    ),
    (
        "walled-beyond-swap-limit-fails",
        replace(AT_LIMIT, swap_count=7),
        walled(),
        POLICY,
        RETRY,
        Expect(
            replace(AT_LIMIT, swap_count=7),
            Finish,
            "SwapLimitReached",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            phase=SessionPhase.FAILED,
        ),
    ),
    (
        "walled-max-swaps-zero-fails-first-time",
        FRESH,
        walled(),
        replace(POLICY, max_swaps=0),
        RETRY,
        Expect(
            FRESH,
            Finish,
            "SwapLimitReached",
            WallAccount("alice", RESET, "five_hour", EVIDENCE),
            phase=SessionPhase.FAILED,
        ),
    ),
    # walled without a reset time: only a suspicion, like a throttle
    (
        "walled-without-reset-is-first-suspicion",
        FRESH,
        walled(resets_at=None),
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, suspicions=1),
            Reschedule,
            "Throttled",
            NoteSuspicion("alice", EVIDENCE, 1),
            leave=False,
            not_before=NOW + timedelta(seconds=10),
            says=("alice", "1/2"),
        ),
    ),
    (
        "walled-without-reset-second-confirms",
        replace(FRESH, suspicions=1),
        walled(resets_at=None),
        POLICY,
        RETRY,
        Expect(
            FRESH,
            Reschedule,
            "ThrottleConfirmed",
            WallAccount("alice", NOW + timedelta(minutes=15), None, EVIDENCE, True),
            leave=True,
            says=("alice", "2 attempts in a row", "15m"),
        ),
    ),
    (
        "walled-without-reset-in-cooldown-not-confirmed",
        replace(COOLING, suspicions=1),
        walled(resets_at=None),
        POLICY,
        RETRY,
        Expect(
            replace(COOLING, suspicions=2),
            Reschedule,
            "Throttled",
            NoteSuspicion("alice", EVIDENCE, 2),
            leave=False,
            not_before=NOW + timedelta(seconds=20),
            says=("cooldown",),
        ),
    ),
    # auth_failed: block the account, move; the session is not failed
    (
        "auth-failed-moves",
        replace(FRESH, suspicions=1, failures=1),
        AUTH,
        POLICY,
        RETRY,
        Expect(
            FRESH,  # a 401 ends the run of failures too: the next account gets its own retries
            Reschedule,
            "AuthFailed",
            BlockAccount("alice", "401 authentication_failed"),
            leave=True,
            says=("alice", "401"),
        ),
    ),
    (
        "auth-failed-inside-cooldown-still-moves",
        COOLING,
        AUTH,
        POLICY,
        RETRY,
        Expect(
            COOLING,
            Reschedule,
            "AuthFailed",
            BlockAccount("alice", "401 authentication_failed"),
            leave=True,
        ),
    ),
    (
        "auth-failed-at-swap-limit-fails-but-blocks-account",
        AT_LIMIT,
        AUTH,
        POLICY,
        RETRY,
        Expect(
            AT_LIMIT,
            Finish,
            "SwapLimitReached",
            BlockAccount("alice", "401 authentication_failed"),
            phase=SessionPhase.FAILED,
            says=("401", "moved 3 times"),
        ),
    ),
    # throttled, confirmed, at the swap limit: the wall still lands on the account
    (
        "throttle-confirmed-at-swap-limit-fails-but-walls-account",
        replace(AT_LIMIT, suspicions=1),
        THROTTLED,
        POLICY,
        RETRY,
        Expect(
            AT_LIMIT,
            Finish,
            "SwapLimitReached",
            WallAccount("alice", NOW + timedelta(minutes=15), None, "429 rate_limit", True),
            phase=SessionPhase.FAILED,
        ),
    ),
    (
        "throttle-cooldown-boundary-is-outside",
        replace(FRESH, swap_count=1, last_swap_at=NOW - timedelta(minutes=5), suspicions=1),
        THROTTLED,
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, swap_count=1, last_swap_at=NOW - timedelta(minutes=5)),
            Reschedule,
            "ThrottleConfirmed",
            WallAccount("alice", NOW + timedelta(minutes=15), None, "429 rate_limit", True),
            leave=True,
        ),
    ),
    (
        "throttle-zero-cooldown-never-blocks",
        replace(FRESH, swap_count=1, last_swap_at=NOW, suspicions=1),
        THROTTLED,
        replace(POLICY, cooldown=timedelta(0)),
        RETRY,
        Expect(
            replace(FRESH, swap_count=1, last_swap_at=NOW),
            Reschedule,
            "ThrottleConfirmed",
            WallAccount("alice", NOW + timedelta(minutes=15), None, "429 rate_limit", True),
            leave=True,
        ),
    ),
    # failed: bounded retries in place with doubling backoff, then Failed
    (
        "failed-1st-retries-in-10s",
        replace(FRESH, suspicions=1),
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, failures=1),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=10),
            says=("attempt 2 failed", "claude exited 1: boom", "retry 1/3", "10s"),
        ),
    ),
    (
        "failed-2nd-retries-in-20s",
        replace(FRESH, failures=1),
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, failures=2),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=20),
            says=("retry 2/3", "20s"),
        ),
    ),
    (
        "failed-3rd-retries-in-40s",
        replace(FRESH, failures=2),
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, failures=3),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=40),
            says=("retry 3/3", "40s"),
        ),
    ),
    (
        "failed-4th-exhausts-retries",
        replace(FRESH, failures=3),
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, failures=4),
            Finish,
            "RetriesExhausted",
            phase=SessionPhase.FAILED,
            says=("4 attempts", "claude exited 1: boom"),
        ),
    ),
    (
        "failed-backoff-capped-at-max",
        replace(FRESH, failures=4),
        FAILED,
        POLICY,
        replace(RETRY, base_backoff=timedelta(minutes=1), max_failures=10),
        Expect(
            replace(FRESH, failures=5),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(minutes=5),  # 1m * 2**4 = 16m, capped at 5m
            says=("retry 5/10", "300s"),
        ),
    ),
    (
        "failed-huge-count-backoff-capped-without-overflow",
        replace(FRESH, failures=500),
        FAILED,
        POLICY,
        replace(RETRY, max_failures=10_000),
        Expect(
            replace(FRESH, failures=501),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(minutes=5),
        ),
    ),
    (
        "failed-zero-retries-fails-at-once",
        FRESH,
        FAILED,
        POLICY,
        replace(RETRY, max_failures=0),
        Expect(
            replace(FRESH, failures=1),
            Finish,
            "RetriesExhausted",
            phase=SessionPhase.FAILED,
            says=("1 attempts",),
        ),
    ),
    (
        "failed-without-detail-says-so",
        FRESH,
        AttemptEnd(Outcome.FAILED),
        POLICY,
        RETRY,
        Expect(
            replace(FRESH, failures=1),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=10),
            says=("without saying why",),
        ),
    ),
    (
        "failed-never-moves-even-with-suspicions-and-no-cooldown",
        replace(COOLED, suspicions=5),
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(COOLED, failures=1),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=10),
        ),
    ),
    (
        "failed-at-swap-limit-still-retries-in-place",
        AT_LIMIT,
        FAILED,
        POLICY,
        RETRY,
        Expect(
            replace(AT_LIMIT, failures=1),
            Reschedule,
            "AttemptFailed",
            leave=False,
            not_before=NOW + timedelta(seconds=10),
        ),
    ),
]


@pytest.mark.parametrize(
    ("before", "attempt_end", "policy", "retry", "want"),
    [pytest.param(*row[1:], id=row[0]) for row in AFTER_ATTEMPT],
)
def test_after_attempt(
    before: Progress,
    attempt_end: AttemptEnd,
    policy: FailoverPolicy,
    retry: RetryPolicy,
    want: Expect,
) -> None:
    check(after_attempt(before, attempt_end, policy, retry, NOW), want)


# --- throttles: confirmations 1..3, 1st..Nth in a row, inside and outside the cooldown ------


def _backoff(count: int) -> timedelta:
    doubled: timedelta = timedelta(seconds=10) * 2 ** (count - 1)
    return min(timedelta(minutes=5), doubled)


def _throttle_rows() -> list[object]:
    rows: list[object] = []
    for confirmations in (1, 2, 3):
        for earlier in range(0, confirmations + 5):
            for cooling in (False, True):
                count = earlier + 1
                confirmed = count >= confirmations and not cooling
                before = replace(COOLING if cooling else COOLED, suspicions=earlier)
                rows.append(
                    pytest.param(
                        confirmations,
                        before,
                        confirmed,
                        count,
                        id=f"confirm{confirmations}-throttle#{count}"
                        f"-{'in' if cooling else 'after'}-cooldown",
                    )
                )
    return rows


@pytest.mark.parametrize(("confirmations", "before", "confirmed", "count"), _throttle_rows())
def test_throttle_confirmation_table(
    confirmations: int, before: Progress, confirmed: bool, count: int
) -> None:
    policy = replace(POLICY, confirmations=confirmations)
    decision = after_attempt(before, THROTTLED, policy, RETRY, NOW)
    if confirmed:
        check(
            decision,
            Expect(
                replace(before, suspicions=0),
                Reschedule,
                "ThrottleConfirmed",
                WallAccount("alice", NOW + timedelta(minutes=15), None, "429 rate_limit", True),
                leave=True,
                says=(f"throttled {count} attempts in a row",),
            ),
        )
    else:
        check(
            decision,
            Expect(
                replace(before, suspicions=count),
                Reschedule,
                "Throttled",
                NoteSuspicion("alice", "429 rate_limit", count),
                leave=False,
                not_before=NOW + _backoff(count),
                says=(f"{count}/{confirmations}", f"{int(_backoff(count).total_seconds())}s"),
            ),
        )
        cooldown_note = "cooldown" in decision.step.message
        assert cooldown_note is (count >= confirmations)


# --- transcript: once true, true for life ---------------------------------------------------


@pytest.mark.parametrize("outcome", list(Outcome), ids=[o.value for o in Outcome])
@pytest.mark.parametrize("had", [False, True], ids=["had-none", "had-one"])
@pytest.mark.parametrize(
    "reported", [None, False, True], ids=["reports-unknown", "reports-false", "reports-true"]
)
def test_transcript_flag_is_sticky(outcome: Outcome, had: bool, reported: bool | None) -> None:
    attempt_end = AttemptEnd(
        outcome,
        transcript=reported,
        resets_at=RESET if outcome is Outcome.WALLED else None,
        window="five_hour" if outcome is Outcome.WALLED else None,
    )
    before = replace(FRESH, transcript=had)
    decision = after_attempt(before, attempt_end, POLICY, RETRY, NOW)
    assert decision.progress.transcript is (had or bool(reported))


@pytest.mark.parametrize("reported", [None, False], ids=["unknown", "false"])
def test_transcript_flag_survives_swap_limit_and_retry_exhaustion(reported: bool | None) -> None:
    swapped_out = after_attempt(replace(AT_LIMIT, transcript=True), AUTH, POLICY, RETRY, NOW)
    worn_out = after_attempt(
        replace(FRESH, transcript=True, failures=3),
        AttemptEnd(Outcome.FAILED, transcript=reported),
        POLICY,
        RETRY,
        NOW,
    )
    assert swapped_out.progress.transcript
    assert worn_out.progress.transcript


# --- evicted: the operator moves a running session (drill, 401 seen by another pod) ----------

EVICTED = [
    (
        "drill-moves",
        FRESH,
        Expect(FRESH, Reschedule, "Drill", leave=True, says=("drill on alice",)),
    ),
    (
        "drill-inside-cooldown-moves",
        COOLING,
        Expect(COOLING, Reschedule, "Drill", leave=True),
    ),
    (
        "drill-keeps-suspicions-until-the-swap",
        replace(FRESH, suspicions=1, failures=2),
        Expect(replace(FRESH, suspicions=1, failures=2), Reschedule, "Drill", leave=True),
    ),
    (
        "drill-at-swap-limit-fails",
        AT_LIMIT,
        Expect(
            AT_LIMIT,
            Finish,
            "SwapLimitReached",
            phase=SessionPhase.FAILED,
            says=("drill on alice", "moved 3 times", "maxSwaps"),
        ),
    ),
]


@pytest.mark.parametrize(("before", "want"), [pytest.param(*row[1:], id=row[0]) for row in EVICTED])
def test_evicted(before: Progress, want: Expect) -> None:
    decision = evicted(before, POLICY, "Drill", "a failover drill on alice moves its sessions")
    check(decision, want)


# --- record_swap: the start of the next attempt ------------------------------------------------

LATER = NOW + timedelta(seconds=42)

RECORD_SWAP = [
    (
        "first-placement-is-not-a-swap",
        Progress(),
        "alice",
        Progress(attempt=1, account="alice"),
    ),
    (
        "first-placement-keeps-earlier-suspicions",
        Progress(suspicions=1),
        "alice",
        Progress(attempt=1, account="alice", suspicions=1),
    ),
    (
        "same-account-retry-is-not-a-swap",
        replace(COOLED, suspicions=1, failures=2, transcript=True),
        "alice",
        replace(COOLED, attempt=5, suspicions=1, failures=2, transcript=True),
    ),
    (
        "other-account-is-a-swap-and-resets-confirmations",
        replace(COOLED, suspicions=1, transcript=True),
        "bob",
        replace(
            COOLED,
            attempt=5,
            account="bob",
            swap_count=2,
            last_swap_at=LATER,
            suspicions=0,
            transcript=True,
        ),
    ),
    (
        "swap-from-fresh-session-starts-cooldown",
        FRESH,
        "bob",
        replace(FRESH, attempt=3, account="bob", swap_count=1, last_swap_at=LATER),
    ),
]


@pytest.mark.parametrize(
    ("before", "to_account", "after"), [pytest.param(*row[1:], id=row[0]) for row in RECORD_SWAP]
)
def test_record_swap(before: Progress, to_account: str, after: Progress) -> None:
    assert record_swap(before, to_account, LATER) == after


@pytest.mark.parametrize(
    ("progress", "now", "cooling"),
    [
        pytest.param(Progress(), NOW, False, id="never-swapped"),
        pytest.param(COOLING, NOW, True, id="swapped-1m-ago"),
        pytest.param(COOLING, NOW + timedelta(minutes=3, seconds=59), True, id="1s-before-end"),
        pytest.param(COOLING, NOW + timedelta(minutes=4), False, id="exactly-at-end"),
        pytest.param(COOLED, NOW, False, id="swapped-10m-ago"),
    ],
)
def test_in_cooldown(progress: Progress, now: datetime, cooling: bool) -> None:
    assert progress.in_cooldown(POLICY, now) is cooling


@pytest.mark.parametrize(
    ("consecutive", "seconds"),
    [(0, 10), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (7, 300), (10_000, 300)],
    ids=lambda v: str(v),
)
def test_backoff_doubles_and_caps(consecutive: int, seconds: int) -> None:
    assert RETRY.backoff(consecutive) == timedelta(seconds=seconds)


@pytest.mark.parametrize("phase", list(SessionPhase), ids=[p.value for p in SessionPhase])
def test_only_succeeded_and_failed_are_finished(phase: SessionPhase) -> None:
    assert phase.finished is (phase in {SessionPhase.SUCCEEDED, SessionPhase.FAILED})


# --- sequences: the scenarios of issue 3, driven through the machine ---------------------------


def run(
    progress: Progress, ends: list[AttemptEnd], now: datetime = NOW
) -> tuple[Progress, list[Decision]]:
    """Feed attempt ends one by one; a Reschedule that leaves moves to the next free name."""
    decisions = []
    for i, attempt_end in enumerate(ends):
        decision = after_attempt(progress, attempt_end, POLICY, RETRY, now)
        decisions.append(decision)
        if isinstance(decision.step, Finish):
            return decision.progress, decisions
        target = f"acct{i}" if decision.step.leave else (decision.progress.account or "")
        progress = record_swap(decision.progress, target, now)
    return progress, decisions


def test_a_burst_of_failures_never_swaps() -> None:
    final, decisions = run(FRESH, [FAILED] * 3)
    assert final.account == "alice"
    assert final.swap_count == 0
    assert all(isinstance(d.step, Reschedule) and not d.step.leave for d in decisions)
    assert all(d.effect is None for d in decisions)


def test_two_throttles_in_a_row_swap() -> None:
    final, decisions = run(FRESH, [THROTTLED, THROTTLED])
    assert [d.step.reason for d in decisions] == ["Throttled", "ThrottleConfirmed"]
    assert final.account == "acct1"
    assert final.swap_count == 1


def test_a_failure_between_throttles_breaks_the_chain() -> None:
    _, decisions = run(FRESH, [THROTTLED, FAILED, THROTTLED])
    assert [d.step.reason for d in decisions] == ["Throttled", "AttemptFailed", "Throttled"]


def test_confirmation_count_starts_over_on_the_new_account() -> None:
    # One throttle on alice, then a wall moves the session: bob's first throttle is 1/2.
    _, decisions = run(FRESH, [THROTTLED, walled(), THROTTLED])
    assert [d.step.reason for d in decisions] == ["Throttled", "Walled", "Throttled"]
    assert decisions[-1].effect == NoteSuspicion("acct1", "429 rate_limit", 1)


def test_cooldown_stops_ping_pong_then_lets_a_confirmed_wall_through() -> None:
    progress = record_swap(FRESH, "bob", NOW)  # just swapped onto bob
    for minute in (1, 2, 3):
        decision = after_attempt(
            progress, THROTTLED, POLICY, RETRY, NOW + timedelta(minutes=minute)
        )
        assert decision.step.reason == "Throttled"
        progress = record_swap(decision.progress, "bob", NOW + timedelta(minutes=minute))
    decision = after_attempt(progress, THROTTLED, POLICY, RETRY, NOW + timedelta(minutes=6))
    assert decision.step.reason == "ThrottleConfirmed"
    assert decision.effect == WallAccount(
        "bob", NOW + timedelta(minutes=21), None, "429 rate_limit", True
    )


def test_swap_limit_counts_real_moves_only() -> None:
    # Walled on alice, waits, and lands on alice again after the reset: not a swap. Then two
    # real moves use up maxSwaps=2, and the next wall fails the session.
    policy = replace(POLICY, max_swaps=2)
    progress = FRESH
    reasons = []
    for target in ("alice", "x1", "x2", "x3"):
        decision = after_attempt(progress, walled(), policy, RETRY, NOW)
        reasons.append(decision.step.reason)
        if isinstance(decision.step, Finish):
            break
        progress = record_swap(decision.progress, target, NOW)
    assert reasons == ["Walled", "Walled", "Walled", "SwapLimitReached"]
    assert progress.swap_count == 2


@pytest.mark.parametrize(
    "between",
    [
        pytest.param(walled(), id="walled"),
        pytest.param(AUTH, id="auth-failed"),
        pytest.param(THROTTLED, id="confirmed-throttle"),
    ],
)
def test_failures_count_only_consecutive_failed_attempts(between: AttemptEnd) -> None:
    # three failures in a row on alice: retry 3/3 used (and one throttle already suspected, so
    # the throttle case is the confirming one that moves the session)
    progress = replace(FRESH, failures=3, suspicions=1)
    decision = after_attempt(progress, between, POLICY, RETRY, NOW)
    target = "bob" if isinstance(decision.step, Reschedule) and decision.step.leave else "alice"
    progress = record_swap(decision.progress, target, NOW)
    after = after_attempt(progress, FAILED, POLICY, RETRY, NOW)
    assert isinstance(after.step, Reschedule), after.step.message


def test_failed_and_throttled_in_turn_still_reach_the_retry_limit() -> None:
    # Each throttle is the first of a streak (a failure in between resets the suspicions), so
    # it is retried in place: it must not reset `failures`, or this loop would never end.
    progress, steps = FRESH, []
    for end in [FAILED, THROTTLED] * 10:
        decision = after_attempt(progress, end, POLICY, RETRY, NOW)
        steps.append(decision.step.reason)
        if isinstance(decision.step, Finish):
            break
        progress = decision.progress
    assert steps[-1] == "RetriesExhausted"
    assert steps.count("AttemptFailed") == RETRY.max_failures


def test_very_long_cooldown_does_not_overflow() -> None:
    policy = replace(POLICY, cooldown=parse_duration("99999999h"))
    decision = after_attempt(replace(COOLING, suspicions=1), THROTTLED, policy, RETRY, NOW)
    assert decision.step.reason == "Throttled"


# --- no duration, however large, makes the machine raise ----------------------------------------

DURATIONS = st.one_of(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=10)),
    st.timedeltas(min_value=timedelta(0)),
    st.just(timedelta.max),
)
ENDS = st.sampled_from([walled(), walled(resets_at=None), AUTH, THROTTLED, FAILED, COMPLETED])


@settings(max_examples=200, deadline=None, database=None)
@given(
    cooldown=DURATIONS,
    base=DURATIONS,
    cap=DURATIONS,
    suspected=DURATIONS,
    min_wall=DURATIONS,
    swapped=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    now=st.datetimes(timezones=st.just(UTC)),
    counts=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 100)),
    attempt_end=ENDS,
)
def test_huge_durations_never_raise(
    cooldown: timedelta,
    base: timedelta,
    cap: timedelta,
    suspected: timedelta,
    min_wall: timedelta,
    swapped: datetime | None,
    now: datetime,
    counts: tuple[int, int, int],
    attempt_end: AttemptEnd,
) -> None:
    policy = replace(POLICY, cooldown=cooldown)
    retry = replace(
        RETRY, base_backoff=base, max_backoff=cap, suspected_wall=suspected, min_wall=min_wall
    )
    suspicions, failures, swaps = counts
    progress = Progress(
        attempt=3,
        account="alice",
        swap_count=swaps,
        last_swap_at=swapped,
        suspicions=suspicions,
        failures=failures,
    )
    decision = after_attempt(progress, attempt_end, policy, retry, now)
    assert retry.backoff(failures) <= cap
    if isinstance(decision.step, Reschedule) and decision.step.not_before is not None:
        assert decision.step.not_before >= now
    if isinstance(decision.effect, WallAccount):
        assert decision.effect.until >= now
