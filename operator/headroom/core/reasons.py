"""The reasons the core decides with, as they appear in status, conditions, Events and metric
labels. StrEnums: each value is the string the API and dashboards have always seen, so a
member can go straight into a status patch or a label.

A failure's own cause (`AttemptEnd.cause`, e.g. RepoCloneFailed) passes through as it is:
it names what went wrong in the pod, not a decision of the machine.
"""

from __future__ import annotations

from enum import StrEnum


class MoveReason(StrEnum):
    """Why a session's next attempt is placed again: the reason of a Reschedule, of
    status.pendingMove, and of a swap record (status.swaps[].reason, headroom_swaps_total)."""

    WALLED = "Walled"
    MODEL_WALLED = "ModelWalled"  # a per-model weekly window: the account runs other models
    CREDITS_SPENT = "CreditsSpent"  # the account's usage credit is spent: a wall
    MODEL_NEEDS_CREDITS = "ModelNeedsCredits"  # only the session's model: no wall
    AUTH_FAILED = "AuthFailed"
    THROTTLE_CONFIRMED = "ThrottleConfirmed"
    THROTTLED = "Throttled"  # a retry in place; a swap only if the account cannot take it
    ATTEMPT_FAILED = "AttemptFailed"  # the same
    DRILL = "Drill"
    NODE_LOST = "NodeLost"  # its node stopped answering; placed again, the account kept
    MOVED = "Moved"  # a swap no decision explains (a pod adopted after a crash)


class FinishReason(StrEnum):
    """Why a session finished: status.result.reason and the Completed condition's reason."""

    COMPLETED = "Completed"
    SWAP_LIMIT_REACHED = "SwapLimitReached"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    TIMED_OUT = "TimedOut"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    NO_HEADROOM_TIMEOUT = "NoHeadroomTimeout"
    INVALID_SPEC = "InvalidSpec"
    PREDECESSOR_HAS_NO_CONVERSATION = "PredecessorHasNoConversation"
    PREDECESSOR_WORKSPACE_GONE = "PredecessorWorkspaceGone"
    WORKSPACE_LOST = "WorkspaceLost"  # the workspace claim of a started session is gone


class EvictionReason(StrEnum):
    """Why a running pod was stopped (status.evictionReason): by the operator, or by the
    control plane because its node stopped answering."""

    TIMED_OUT = "TimedOut"
    DRILL = "Drill"
    NODE_LOST = "NodeLost"
