"""Classification of a finished agent pod into what happened to the attempt.

Input is what the kubelet reports for the agent container: exit code, reason and the
termination message. The rule that matters most: anything we cannot read with certainty is
`failed`, never a wall. A wall moves sessions and blocks an account; a false one makes
sessions ping-pong between accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from headroom.contract.termination import EXIT_CODES, Outcome, parse
from headroom.core.durations import parse_time


@dataclass(frozen=True)
class AttemptEnd:
    outcome: Outcome
    detail: str = ""
    evidence: str = ""
    window: str | None = None
    resets_at: datetime | None = None
    utilization: dict[str, float] = field(default_factory=dict, hash=False)
    warnings: dict[str, float] = field(default_factory=dict, hash=False)  # allowed_warning
    transcript: bool | None = None
    turns: int | None = None
    cost_usd: float | None = None
    duration_seconds: float | None = None
    summary: str = ""
    structured_output: Any = field(default=None, hash=False)
    # Why a failure is not the agent's own (RepoCloneFailed): the reason users see.
    cause: str | None = None


@dataclass(frozen=True)
class ContainerExit:
    """The terminated state of the agent container, as in pod.status.containerStatuses."""

    exit_code: int | None
    reason: str = ""  # Completed, Error, OOMKilled, ...
    message: str | None = None  # the termination message


OOM_KILLED = "OOMKilled"


def classify(exit: ContainerExit | None) -> AttemptEnd:
    """What the attempt's end means. `None`: the pod is gone without a terminated container.

    A failure in a container the kernel OOM-killed (the runtime says so whichever of its
    processes died: the CLI, a tool, or the runner itself) is the memory limit's doing, and
    says so, so that users raise spec.resources rather than look for an agent bug."""
    end = _classify_report(exit)
    if exit is None or exit.reason != OOM_KILLED or end.outcome is not Outcome.FAILED:
        return end
    detail = f"out of memory: the container was OOM-killed at its memory limit; {end.detail}"
    return replace(end, detail=detail, cause=OOM_KILLED)


def _classify_report(exit: ContainerExit | None) -> AttemptEnd:
    if exit is None:
        return AttemptEnd(Outcome.FAILED, "the agent pod disappeared before it reported an outcome")
    parsed = parse(exit.message)
    code = exit.exit_code
    if parsed.message is None:
        why = parsed.problem
        if exit.reason and exit.reason not in {"Error", "Completed"}:
            why = f"{why}; the container ended with {exit.reason}"
        return AttemptEnd(Outcome.FAILED, f"{why} (exit code {code})", transcript=None)
    msg = parsed.message
    # The runner exits with its outcome's code (the pod contract); message and code must agree.
    # A missing code confirms nothing, so it is no more trusted than a contradicting one.
    if code is None or EXIT_CODES[msg.outcome] != code:
        exited = "without an exit code" if code is None else f"exited with {code}"
        return AttemptEnd(
            Outcome.FAILED,
            f"the agent reported {msg.outcome.value} but {exited}"
            f"{f' ({exit.reason})' if exit.reason else ''}, so the report is not trusted",
            evidence=msg.evidence,
            transcript=msg.transcript,
        )
    try:
        resets_at = parse_time(msg.resets_at)
    except ValueError:  # the schema checks the shape; an impossible date still lands here
        if msg.outcome is Outcome.WALLED:  # a wall needs a real reset time; others ignore it
            problem = f"the reported reset time {msg.resets_at!r} is invalid"
            return AttemptEnd(Outcome.FAILED, problem)
        resets_at = None
    return AttemptEnd(
        outcome=msg.outcome,
        detail=msg.detail,
        evidence=msg.evidence,
        window=msg.window,
        resets_at=resets_at,
        utilization=dict(msg.utilization),
        warnings=dict(msg.warnings),
        transcript=msg.transcript,
        turns=msg.turns,
        cost_usd=msg.cost_usd,
        duration_seconds=msg.duration_seconds,
        summary=msg.summary if msg.outcome is Outcome.COMPLETED else "",
        structured_output=msg.structured_output if msg.outcome is Outcome.COMPLETED else None,
    )


CLONE_FAILED = "RepoCloneFailed"


def classify_clone(exit: ContainerExit) -> AttemptEnd:
    """A failed `clone` init container: always `failed` (whatever its message claims, a clone
    says nothing about the account), retried with backoff; git's own words as the detail."""
    parsed = parse(exit.message)
    detail = parsed.message.detail if parsed.message is not None else ""
    if not detail:
        why = parsed.problem or "no detail"
        detail = f"{CLONE_FAILED}: the clone init container exited {exit.exit_code} ({why})"
    return AttemptEnd(Outcome.FAILED, detail, evidence=detail[:120], cause=CLONE_FAILED)


def classify_staging(exit: ContainerExit) -> AttemptEnd:
    """A failed `credential` init container: the agent never started, so nothing is known
    of the account; `failed`, retried with backoff."""
    why = exit.reason or "Error"
    detail = (
        f"the credential init container exited {exit.exit_code} ({why}) before the agent"
        " started; see its log (kubectl logs <pod> -c credential)"
    )
    return AttemptEnd(Outcome.FAILED, detail, evidence=detail[:120])
