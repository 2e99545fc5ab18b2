"""What to do with an attempt whose pod still runs: let it run, or stop it because the
session's time is up (spec.timeout) or its account is being drilled.

A stopped pod's end then comes back as an eviction (`EvictionReason`, kept in
status.evictionReason between the two passes) and `core.session.after_end` decides from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from headroom.core.accounts import Account
from headroom.core.durations import later
from headroom.core.reasons import EvictionReason
from headroom.core.task import Limits, Totals, seconds_left

# The shortest wait before the timeout is checked again.
MIN_RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class WhileRunning:
    stop: EvictionReason | None = None  # stop the pod, and why
    # When spec.timeout will be reached: a running pod's own status changes start no pass,
    # so a timer has to check the timeout then.
    recheck_at: datetime | None = None


def drilling(account: Account | None, now: datetime) -> bool:
    return account is not None and account.drill_until is not None and account.drill_until > now


def while_running(
    limits: Limits,
    totals: Totals,
    started: datetime | None,
    account: Account | None,
    *,
    stopping: bool,
    now: datetime,
) -> WhileRunning:
    """The decision for the current pod. `totals` is the running time of earlier attempts,
    `started` when this attempt's container started (None: not yet, it has run for 0s),
    `stopping` whether the pod is already being deleted (then there is nothing to decide).

    The timeout comes first: a session whose time is up finishes, even on a drilled account.
    A drill moves the session for real: the pod stops, and once it is gone the next pass
    places the session elsewhere (never two live pods for one session)."""
    if stopping:
        return WhileRunning()
    left = seconds_left(limits, totals)
    recheck_at = None
    if left is not None:
        running = (now - started).total_seconds() if started else 0.0
        if running >= left:
            return WhileRunning(stop=EvictionReason.TIMED_OUT)
        # Not sooner than MIN_RECHECK: a pod that has not started yet accrues no running
        # time, so a timeout of a few milliseconds re-armed its timer at once, for ever
        # (found by fuzzing spec.timeout against the API server).
        recheck_at = later(now, max(left - running, MIN_RECHECK_SECONDS))
    if drilling(account, now):
        return WhileRunning(stop=EvictionReason.DRILL, recheck_at=recheck_at)
    return WhileRunning(recheck_at=recheck_at)
