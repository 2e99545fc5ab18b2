"""What an attempt's end does to its account: walls, 401 blocks, suspicions, usage windows.

Each effect lands in the roster overlay first (placement sees it at once) and then in the
account's status, with an Event and a log line: the record that lets someone find out
later why a session moved or an account was blocked.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from headroom.contract.scrub import snippet
from headroom.core.accounts import (
    CLUSTER_KIND,
    NAMESPACED_KIND,
    Account,
    AccountKey,
    describe,
)
from headroom.core.durations import format_time
from headroom.core.outcome import AttemptEnd
from headroom.core.session import AccountEffect, BlockAccount, NoteSuspicion, WallAccount
from headroom.core.windows import merged_windows
from headroom.reconcilers import metrics
from headroom.reconcilers.runtime import Runtime

log = logging.getLogger("headroom.account")
JSON = dict[str, Any]


def account_ref(account: Account, uid: str | None = None) -> JSON:
    """Enough of an account's body for kopf to post an Event about it."""
    meta: JSON = {"name": account.name, "uid": uid or ""}
    if not account.cluster:
        meta["namespace"] = account.namespace
    return {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": CLUSTER_KIND if account.cluster else NAMESPACED_KIND,
        "metadata": meta,
    }


async def apply(
    rt: Runtime,
    account: Account,
    effect: AccountEffect,
    session: str,
    end: AttemptEnd,
    now: datetime,
) -> None:
    windows = merged_windows(account, end, now)
    # The runner scrubs already; scrub again: a termination message is untrusted input.
    signal: JSON = {"at": format_time(now), "session": session, "evidence": snippet(end.evidence)}
    patch: JSON = {"windows": windows}
    body = account_ref(account, rt.account_uids.get((account.namespace, account.name)))
    if isinstance(effect, WallAccount):
        rt.roster.note(
            account.namespace, account.name, walled_until=effect.until, wall_window=effect.window
        )
        signal.update(type="walled", window=effect.window or "unconfirmed")
        patch["walledUntil"] = format_time(effect.until)
        how = (
            "confirmed by repeated throttling"
            if effect.confirmed_by_repetition
            else "structured rate-limit signal"
        )
        rt.event(
            body,
            "Walled",
            f"walled until {format_time(effect.until)} "
            f"(window {effect.window or 'unknown'}, {how}); session {session}; "
            f"evidence: {snippet(effect.evidence) or '-'}",
            warning=True,
        )
        metrics.wall(account.namespace, account.name, effect.window)
    elif isinstance(effect, BlockAccount):
        rt.roster.note(account.namespace, account.name, auth_failed_hash=account.credentials_hash)
        signal.update(type="auth_failed")
        patch["authFailedHash"] = account.credentials_hash
        rt.event(
            body,
            "AuthFailed",
            f"the API rejected the credentials at startup (401) for session {session}; no new "
            "sessions until the Secret's content changes; "
            f"evidence: {snippet(effect.evidence) or '-'}",
            warning=True,
        )
        metrics.auth_failure(account.namespace, account.name)
    elif isinstance(effect, NoteSuspicion):
        signal.update(type="throttled")
        rt.event(
            body,
            "Throttled",
            f"limit without a reset time ({effect.count} in a row) for session {session}; "
            f"not a wall; evidence: {snippet(effect.evidence) or '-'}",
        )
    patch["lastSignal"] = signal
    log.info(
        "signal %s on %s from session %s window=%s evidence=%r",
        signal.get("type"),
        describe(account.key),
        session,
        signal.get("window"),
        signal["evidence"],
    )
    await rt.kube.patch_account_status(account.namespace, account.name, patch)
    rt.mark_account_dirty(account.namespace, account.name)


async def record_windows(rt: Runtime, account: Account, end: AttemptEnd, now: datetime) -> None:
    await rt.kube.patch_account_status(
        account.namespace, account.name, {"windows": merged_windows(account, end, now)}
    )


def drill_progress(rt: Runtime, account: AccountKey, now: datetime) -> None:
    """A session left a drilled account: count it; the account reconciler records the rest."""
    drill = rt.drills.get(account)
    if drill is not None:
        drill.moved += 1
        drill.last_move = now
        rt.mark_account_dirty(*account)
