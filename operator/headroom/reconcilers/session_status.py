"""AgentSession.status (and spec.failover) read into the core's values, and the records a
pass writes back. Pure: JSON in, JSON out, within the CRD's bounds (contract/crd.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from headroom.contract import crd
from headroom.contract.scrub import scrub
from headroom.core import session as machine
from headroom.core import task
from headroom.core.durations import format_time, parse_duration, parse_time
from headroom.core.outcome import AttemptEnd

JSON = dict[str, Any]
STRUCTURED_OUTPUT_MAX_BYTES = 16 * 1024
INT32_MAX = 2**31 - 1


def policy_of(spec: JSON) -> machine.FailoverPolicy:
    failover = spec.get("failover") or {}
    cooldown = failover.get("cooldown")
    return machine.FailoverPolicy(
        cooldown=parse_duration(cooldown) if cooldown is not None else crd.FAILOVER_COOLDOWN,
        confirmations=int(failover.get("confirmations", crd.FAILOVER_CONFIRMATIONS)),
        max_swaps=int(failover.get("maxSwaps", crd.FAILOVER_MAX_SWAPS)),
    )


def progress_of(status: JSON) -> machine.Progress:
    return machine.Progress(
        attempt=int(status.get("attempt", 0)),
        account=status.get("account"),
        swap_count=int(status.get("swapCount", 0)),
        last_swap_at=parse_time(status.get("lastSwapAt")),
        suspicions=int(status.get("suspicions", 0)),
        failures=int(status.get("failures", 0)),
        transcript=bool(status.get("transcript", False)),
    )


def totals_of(status: JSON) -> task.Totals:
    totals = status.get("totals") or {}
    return task.Totals(
        turns=int(totals.get("turns", 0)),
        cost_usd=float(totals.get("costUSD", 0.0)),
        seconds=float(totals.get("durationSeconds", 0.0)),
    )


def totals_json(totals: task.Totals) -> JSON:
    return {
        "turns": min(totals.turns, INT32_MAX),
        "costUSD": totals.cost_usd,
        "durationSeconds": totals.seconds,
    }


def bounded_structured_output(value: object) -> tuple[object, str]:
    """Structured output for status, or None and why: status is stored in etcd beside the
    rest of the object, so an answer of megabytes stays in the pod log."""
    if value is None:
        return None, ""
    size = len(json.dumps(value, separators=(",", ":")))
    if size > STRUCTURED_OUTPUT_MAX_BYTES:
        return None, f" (structured output of {size} bytes left out of status: over 16 KiB)"
    return value, ""


def status_int32(value: object) -> int | None:
    """`value` if the CRD's int32 status fields can hold it (0..2^31-1), else None.

    The termination message's schema bounds `turns` only from below (1e300 is an "integer" to
    JSON Schema), but one out-of-range number makes the API server refuse the whole status
    write: the session then retried that write forever and never finished (tests/faults)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if 0 <= number <= INT32_MAX else None


# --- records of an attempt's end -------------------------------------------------------------

# The outcome recorded for an attempt whose pod the operator stopped (a drill, the timeout).
EVICTED = "evicted"


def outcome_of(end: AttemptEnd, eviction: str | None) -> str:
    """lastOutcome.outcome, attempts[].outcome and the headroom_attempts_total label."""
    return EVICTED if eviction else end.outcome.value


def last_outcome(end: AttemptEnd, eviction: str | None, pod_name: str, now: datetime) -> JSON:
    """status.lastOutcome, from an end whose detail and evidence are already scrubbed."""
    return {
        "outcome": outcome_of(end, eviction),
        "at": format_time(now),
        "podName": pod_name,
        "detail": (end.detail or "")[: crd.DETAIL_CHARS],
        "evidence": end.evidence,
        **({"window": end.window} if end.window else {}),
        **({"resetsAt": format_time(end.resets_at)} if end.resets_at else {}),
    }


def attempt_records(
    status: JSON,
    pod_name: str,
    end: AttemptEnd,
    eviction: str | None,
    started_at: datetime,
    terminated_at: datetime,
) -> list[JSON]:
    """status.attempts with the attempt that just ended, the newest ATTEMPT_RECORDS kept."""
    record: JSON = {
        "attempt": int(status.get("attempt", 0)),
        "podName": pod_name,
        "account": status.get("account") or "",
        "outcome": outcome_of(end, eviction),
        "startedAt": format_time(started_at),
        "finishedAt": format_time(terminated_at),
        "durationSeconds": round(max(0.0, (terminated_at - started_at).total_seconds()), 3),
        "turns": status_int32(end.turns),
        "costUSD": end.cost_usd,
    }
    record = {k: v for k, v in record.items() if v is not None}
    return [*(status.get("attempts") or []), record][-crd.ATTEMPT_RECORDS :]


def finished_result(end: AttemptEnd, step: machine.Finish, totals: task.Totals) -> JSON:
    """status.result of a session whose last attempt's end finished it."""
    structured, note = bounded_structured_output(end.structured_output)
    result = {
        "outcome": end.outcome.value,
        "reason": step.reason,
        "turns": status_int32(totals.turns),
        "costUSD": totals.cost_usd,
        "durationSeconds": totals.seconds,
        "detail": (step.message + note)[: crd.DETAIL_CHARS],
        "summary": scrub(end.summary)[: crd.SUMMARY_CHARS] if end.summary else None,
        "structuredOutput": structured,
    }
    return {k: v for k, v in result.items() if v is not None}


def failed_result(reason: str, message: str, totals: task.Totals) -> JSON:
    """status.result of a session that finished with no attempt's end to report (an invalid
    spec, a limit reached before the next attempt, a predecessor that cannot be continued)."""
    return {
        "outcome": "failed",
        "reason": reason,
        "detail": message[: crd.DETAIL_CHARS],
        "turns": status_int32(totals.turns),
        "costUSD": totals.cost_usd,
        "durationSeconds": totals.seconds,
    }


def swap_records(status: JSON, to_account: str, reason: str, now: datetime) -> list[JSON]:
    """status.swaps with the move from the session's account to `to_account`; the window
    that walled the account, when the last outcome named one. The newest SWAP_RECORDS kept."""
    swap = {
        "from": status.get("account"),
        "to": to_account,
        "at": format_time(now),
        "reason": reason,
    }
    window = (status.get("lastOutcome") or {}).get("window")
    if window:
        swap["window"] = window
    return [*(status.get("swaps") or []), swap][-crd.SWAP_RECORDS :]
