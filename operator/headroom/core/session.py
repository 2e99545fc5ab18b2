"""The AgentSession state machine: what to do when an attempt ends or must be cut short.

Phases: Pending -> Running -> (Waiting | Succeeded | Failed), Waiting -> Running. The machine
decides; the controller carries the decision out (account effects first, then placement
through `core.placement.place`, the same function first placement uses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from headroom.contract import crd
from headroom.contract.termination import CREDITS_WINDOW, MODEL_CREDITS_WINDOW, Outcome
from headroom.core.models import MODEL_SCOPED_WINDOWS
from headroom.core.outcome import AttemptEnd
from headroom.core.placement import Request
from headroom.core.reasons import EvictionReason, FinishReason, MoveReason
from headroom.core.task import Stop


class SessionPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    WAITING = "Waiting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (SessionPhase.SUCCEEDED, SessionPhase.FAILED)


@dataclass(frozen=True)
class FailoverPolicy:
    """spec.failover of one session."""

    cooldown: timedelta = crd.FAILOVER_COOLDOWN
    confirmations: int = crd.FAILOVER_CONFIRMATIONS
    max_swaps: int = crd.FAILOVER_MAX_SWAPS


@dataclass(frozen=True)
class RetryPolicy:
    """Operator-wide limits (flags of `headroom operator`)."""

    base_backoff: timedelta = timedelta(seconds=10)
    max_backoff: timedelta = timedelta(minutes=5)
    max_failures: int = 3
    # How long a wall confirmed by repeated throttles (no reset time known) blocks an account.
    suspected_wall: timedelta = timedelta(minutes=15)
    # How long a spent usage credit whose refresh time is unknown blocks an account before
    # the operator tries it again (a change of its Secret ends the wall sooner).
    credits_recheck: timedelta = timedelta(hours=1)
    # A wall whose reset time is already past still blocks this long, so a skewed clock
    # cannot bounce the session straight back onto the exhausted account.
    min_wall: timedelta = timedelta(seconds=30)

    def backoff(self, consecutive: int) -> timedelta:
        steps = max(0, consecutive - 1)
        try:
            delay: timedelta = self.base_backoff * (2 ** min(steps, 20))
        except OverflowError:  # a base backoff of years, doubled: capped like any other
            return self.max_backoff
        return min(self.max_backoff, delay)


@dataclass(frozen=True)
class Progress:
    """The part of AgentSession.status the machine reads and rewrites."""

    attempt: int = 0
    account: str | None = None
    swap_count: int = 0
    last_swap_at: datetime | None = None
    suspicions: int = 0
    failures: int = 0
    transcript: bool = False

    def in_cooldown(self, policy: FailoverPolicy, now: datetime) -> bool:
        # Compare elapsed time, not `last_swap_at + cooldown`: a cooldown the CRD accepts
        # (e.g. 99999999h) pushes that sum past datetime's range.
        return self.last_swap_at is not None and now - self.last_swap_at < policy.cooldown


# --- effects on the account the attempt ran on -------------------------------------------


@dataclass(frozen=True)
class WallAccount:
    account: str
    until: datetime
    window: str | None
    evidence: str
    confirmed_by_repetition: bool = False
    # The wall's end is a guess (a spent credit without a refresh time): a new credential in
    # the account's Secret may have credit, so a change of the Secret ends the wall.
    until_secret_changes: bool = False


@dataclass(frozen=True)
class WallModel:
    """A per-model weekly window (seven_day_opus, ...) is exhausted: sessions of that model
    avoid the account until `until`; it stays Available for the others."""

    account: str
    window: str
    until: datetime
    evidence: str


@dataclass(frozen=True)
class BlockAccount:
    """A 401: the account's current credentials are dead until the Secret changes."""

    account: str
    evidence: str


@dataclass(frozen=True)
class NoteSuspicion:
    """A limit without a reset time: recorded on the account as forensics, changes nothing."""

    account: str
    evidence: str
    count: int


@dataclass(frozen=True)
class NoteModelCredits:
    """The session's model needs usage credits the account lacks: recorded on the account,
    which stays usable for sessions of other models."""

    account: str
    evidence: str
    detail: str


AccountEffect = WallAccount | WallModel | BlockAccount | NoteSuspicion | NoteModelCredits

# --- what happens to the session next ------------------------------------------------------


@dataclass(frozen=True)
class Finish:
    phase: SessionPhase  # Succeeded or Failed
    reason: str
    message: str


@dataclass(frozen=True)
class Reschedule:
    """Start another attempt. `leave` = the account must be left (a swap); otherwise the
    session retries the same account if it can still take it, no earlier than `not_before`."""

    reason: str
    message: str
    leave: bool
    not_before: datetime | None = None


Step = Finish | Reschedule


@dataclass(frozen=True)
class Decision:
    progress: Progress
    step: Step
    effect: AccountEffect | None = None


def after_attempt(
    progress: Progress,
    end: AttemptEnd,
    policy: FailoverPolicy,
    retry: RetryPolicy,
    now: datetime,
) -> Decision:
    """Decide what an attempt's end means for the session and its account.

    `failures` counts failed attempts *in a row* on one account: an outcome that moves the
    session (a wall, a 401, a confirmed throttle) ends the run, so it gets its own retries on
    the new account. A throttle retried in place neither counts nor ends it: otherwise a session
    alternating failed and throttled attempts would retry for ever without reaching a limit."""
    account = progress.account or ""
    progress = replace(progress, transcript=progress.transcript or bool(end.transcript))

    if end.outcome is Outcome.COMPLETED:
        done = replace(progress, suspicions=0, failures=0)
        return Decision(
            done, Finish(SessionPhase.SUCCEEDED, FinishReason.COMPLETED, "the run finished")
        )

    if end.outcome is Outcome.WALLED and end.window in (CREDITS_WINDOW, MODEL_CREDITS_WINDOW):
        return _credits(replace(progress, suspicions=0, failures=0), end, policy, retry, now)

    if end.outcome is Outcome.WALLED and end.resets_at and end.window in MODEL_SCOPED_WINDOWS:
        until = max(end.resets_at, _after(now, retry.min_wall))
        return _move(
            replace(progress, suspicions=0, failures=0),
            policy,
            MoveReason.MODEL_WALLED,
            f"{account} reached its {end.window} limit (resets {_clock(end.resets_at)}); "
            "it still runs sessions of other models",
            WallModel(account, end.window, until, end.evidence),
        )

    if end.outcome is Outcome.WALLED and end.resets_at is not None:
        until = max(end.resets_at, _after(now, retry.min_wall))
        effect = WallAccount(account, until, end.window, end.evidence)
        window = f" {end.window}" if end.window else ""
        return _move(
            replace(progress, suspicions=0, failures=0),
            policy,
            MoveReason.WALLED,
            f"{account} reached its{window} usage limit (resets {_clock(end.resets_at)})",
            effect,
        )

    if end.outcome is Outcome.AUTH_FAILED:
        effect_block = BlockAccount(account, end.evidence)
        return _move(
            replace(progress, suspicions=0, failures=0),
            policy,
            MoveReason.AUTH_FAILED,
            f"{account} rejected its credentials at startup (401); the account is blocked",
            effect_block,
        )

    if end.outcome is Outcome.THROTTLED or (end.outcome is Outcome.WALLED):
        # A limit without a reset time is a suspicion. Only `confirmations` in a row make it a
        # wall, and not at all inside the cooldown after a swap: a session that just moved
        # must not bounce back and forth between two accounts on one ambiguous throttle.
        count = progress.suspicions + 1
        confirmed = count >= policy.confirmations and not progress.in_cooldown(policy, now)
        if confirmed:
            wall = WallAccount(account, _after(now, retry.suspected_wall), None, end.evidence, True)
            return _move(
                replace(progress, suspicions=0, failures=0),
                policy,
                MoveReason.THROTTLE_CONFIRMED,
                f"{account} throttled {count} attempts in a row without a reset time; "
                f"treating it as walled for {_minutes(retry.suspected_wall)}",
                wall,
            )
        suspected = replace(progress, suspicions=count)
        wait = retry.backoff(count)
        why = " (cooldown after a recent swap)" if count >= policy.confirmations else ""
        return Decision(
            suspected,
            Reschedule(
                MoveReason.THROTTLED,
                f"{account} throttled without a reset time ({count}/{policy.confirmations}"
                f" to confirm){why}; retrying the same account in {_seconds(wait)}",
                leave=False,
                not_before=_after(now, wait),
            ),
            NoteSuspicion(account, end.evidence, count),
        )

    # failed: bounded retries on the same account with backoff, then Failed with the reason.
    failures = progress.failures + 1
    detail = end.detail or "the agent failed without saying why"
    if failures > retry.max_failures:
        return Decision(
            replace(progress, failures=failures),
            Finish(
                SessionPhase.FAILED,
                end.cause or FinishReason.RETRIES_EXHAUSTED,
                f"{failures} attempts in a row failed; last: {detail}",
            ),
        )
    wait = retry.backoff(failures)
    return Decision(
        replace(progress, failures=failures, suspicions=0),
        Reschedule(
            end.cause or MoveReason.ATTEMPT_FAILED,
            f"attempt {progress.attempt} failed ({detail}); retry {failures}/{retry.max_failures}"
            f" in {_seconds(wait)}",
            leave=False,
            not_before=_after(now, wait),
        ),
    )


def _credits(
    progress: Progress, end: AttemptEnd, policy: FailoverPolicy, retry: RetryPolicy, now: datetime
) -> Decision:
    """Usage credits, not a plan window, stopped the run. Never a failure of the session: it
    moves. A spent credit walls the account until its refresh time, or, when the response
    named none, until the recheck or a change of the account's Secret, whichever comes first.
    A model that needs credits walls nothing: only this session leaves the account."""
    account = progress.account or ""
    if end.window == MODEL_CREDITS_WINDOW:
        note = NoteModelCredits(account, end.evidence, end.detail)
        message = f"{account} lacks the usage credits this session's model needs"
        return _move(progress, policy, MoveReason.MODEL_NEEDS_CREDITS, message, note)
    if end.resets_at is not None:
        until = max(end.resets_at, _after(now, retry.min_wall))
        wall = WallAccount(account, until, CREDITS_WINDOW, end.evidence)
        message = f"{account} spent its usage credit (refreshes {_clock(end.resets_at)})"
    else:
        until = max(_after(now, retry.credits_recheck), _after(now, retry.min_wall))
        wall = WallAccount(account, until, CREDITS_WINDOW, end.evidence, until_secret_changes=True)
        message = (
            f"{account} spent its usage credit (no refresh time given); walled until "
            f"{_clock(until)} or until its Secret changes"
        )
    return _move(progress, policy, MoveReason.CREDITS_SPENT, message, wall)


def evicted(progress: Progress, policy: FailoverPolicy, reason: str, message: str) -> Decision:
    """The operator is moving a running session off its account (a drill, or the account went
    AuthFailed through another session's pod)."""
    return _move(progress, policy, reason, message, None)


def _move(
    progress: Progress,
    policy: FailoverPolicy,
    reason: str,
    message: str,
    effect: AccountEffect | None,
) -> Decision:
    if progress.swap_count >= policy.max_swaps:
        return Decision(
            progress,
            Finish(
                SessionPhase.FAILED,
                FinishReason.SWAP_LIMIT_REACHED,
                f"{message}; the session already moved {progress.swap_count} times "
                f"(spec.failover.maxSwaps)",
            ),
            effect,
        )
    return Decision(progress, Reschedule(reason, message, leave=True), effect)


def after_end(
    progress: Progress,
    end: AttemptEnd,
    eviction: str | None,
    policy: FailoverPolicy,
    retry: RetryPolicy,
    stop: Stop | None,
    now: datetime,
) -> Decision:
    """The decision for an attempt that ended, whoever ended it. `eviction` is why the
    operator stopped the pod, if it did (status.evictionReason); `stop` is a limit the
    session's totals, this attempt included, have reached.

    A pod stopped for a drill moves the session, whatever the pod reported on its way out. A
    pod stopped at the timeout ends the session, like any other limit (unless it completed).
    A pod lost with its node says nothing about the agent or the account: the session is
    placed again, preferring the same account, and neither a failure nor a swap is counted."""
    lost = eviction == EvictionReason.NODE_LOST
    if lost and end.outcome is not Outcome.COMPLETED:
        message = f"the node of attempt {progress.attempt} was lost; placing it again"
        transcript = progress.transcript or bool(end.transcript)
        step = Reschedule(MoveReason.NODE_LOST, message, leave=False)
        decision = Decision(replace(progress, transcript=transcript), step)
    elif eviction and eviction != EvictionReason.TIMED_OUT and not lost:
        message = f"moved off {progress.account} by a {eviction.lower()}"
        decision = evicted(progress, policy, eviction, message)
    else:
        decision = after_attempt(progress, end, policy, retry, now)
    if stop is None and eviction == EvictionReason.TIMED_OUT:
        stop = Stop(FinishReason.TIMED_OUT, "spec.timeout was reached while the agent ran")
    return within_limits(decision, stop.reason if stop else None, stop.message if stop else "")


# --- the next attempt ----------------------------------------------------------------------


@dataclass(frozen=True)
class PendingMove:
    """status.pendingMove: what the last attempt's end decided about the next placement,
    kept in status so that a pass after a crash or a wait places the session the same way."""

    reason: str
    message: str
    leave: bool  # leave the account (a swap); otherwise stay on it if it can take the session

    @classmethod
    def of(cls, step: Reschedule) -> PendingMove:
        return cls(step.reason, step.message[: crd.DETAIL_CHARS], step.leave)

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> PendingMove | None:
        if not raw:
            return None
        return cls(
            reason=str(raw.get("reason", SWAP_REASON_UNKNOWN)),
            message=str(raw.get("message", "")),
            leave=bool(raw.get("leave")),
        )

    def to_status(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "leave": self.leave}


# The reason recorded for a swap no decision explains (a session whose account changed with
# no pending move, e.g. adopted from a pod a crashed pass created).
SWAP_REASON_UNKNOWN = MoveReason.MOVED


def swap_reason(move: PendingMove | None) -> str:
    return move.reason if move is not None else SWAP_REASON_UNKNOWN


def next_request(
    selector: Mapping[str, Any] | None,
    fallback_selector: Mapping[str, Any] | None,
    previous: str | None,
    move: PendingMove | None,
    model: str | None = None,
) -> Request:
    """The placement request of the next attempt: leave the previous account when the move
    says so, else prefer it (a retry in place). No pending move: a first placement, or a
    session whose last attempt left no decision; nothing to avoid or prefer. `model` is the
    session's spec.model, which decides which per-model limits of an account concern it: a
    model that needs credits the account lacks is on the account's record
    (status.modelCredits), which keeps this session and every other of that model off it
    until the record ends."""
    return Request(
        selector=selector,
        fallback_selector=fallback_selector,
        avoid=previous if move is not None and move.leave else None,
        prefer=previous if move is not None and not move.leave else None,
        model=model,
    )


def next_attempt(progress: Progress) -> int:
    """The number of the attempt to start (its pod is named after it)."""
    return progress.attempt + 1


def is_swap(progress: Progress, to_account: str) -> bool:
    """Starting on `to_account` moves the session: it ran on another account before."""
    return progress.account is not None and progress.account != to_account


def record_swap(
    progress: Progress, to_account: str, now: datetime, attempt: int | None = None
) -> Progress:
    """The session starts an attempt on `to_account`; a different account than the last one
    is a swap, which starts the cooldown. `attempt` is the attempt's number when it is not the
    next one: a pod created by a pass that crashed before recording it, adopted as it is."""
    moved = is_swap(progress, to_account)
    return replace(
        progress,
        attempt=attempt if attempt is not None else next_attempt(progress),
        account=to_account,
        swap_count=progress.swap_count + (1 if moved else 0),
        last_swap_at=now if moved else progress.last_swap_at,
        suspicions=0 if moved else progress.suspicions,
    )


def _after(now: datetime, delay: timedelta) -> datetime:
    """`now + delay`, saturating at the end of time instead of raising OverflowError: every
    duration here comes from a flag or a spec, and a huge one must mean "very long", not a
    crash in the reconciler."""
    try:
        return now + delay
    except OverflowError:
        return datetime.max.replace(tzinfo=now.tzinfo or UTC)


def _clock(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: timedelta) -> str:
    return f"{int(value.total_seconds())}s"


def _minutes(value: timedelta) -> str:
    return f"{int(value.total_seconds() // 60)}m"


def within_limits(decision: Decision, stop_reason: str | None, stop_message: str) -> Decision:
    """A limit the user set (spec.timeout, a spent budget) ends the session instead of the
    next attempt; a run that completed stays completed."""
    step = decision.step
    if stop_reason is None or (isinstance(step, Finish) and step.phase is SessionPhase.SUCCEEDED):
        return decision
    return replace(decision, step=Finish(SessionPhase.FAILED, stop_reason, stop_message))
