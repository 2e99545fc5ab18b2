"""What an attempt's end does to its account: walls, 401 blocks, suspicions, usage windows.

Each effect lands in the roster overlay first (placement sees it at once) and then in the
account's status, with an Event and a log line: the record that lets someone find out
later why a session moved or an account was blocked.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from headroom.contract.scrub import snippet
from headroom.contract.termination import CREDITS_WINDOW
from headroom.core.accounts import (
    CLUSTER_KIND,
    NAMESPACED_KIND,
    Account,
    AccountKey,
    describe,
)
from headroom.core.durations import format_time
from headroom.core.outcome import AttemptEnd
from headroom.core.session import (
    AccountEffect,
    BlockAccount,
    NoteModelCredits,
    NoteSuspicion,
    WallAccount,
)
from headroom.core.windows import merged_windows
from headroom.kube.client import KubeError
from headroom.reconcilers import metrics, refusals
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
    if isinstance(effect, WallAccount) and known_wall(account, effect):
        # A wall stops every session of its account at once, and each reports it. The first
        # report recorded it (before its own session moved); the others would add a status
        # write and an Event each that say nothing new.
        log.info("signal walled on %s from session %s: already recorded", account.ref, session)
        rt.mark_account_dirty(account.namespace, account.name)
        return
    windows = merged_windows(account, end, now)
    # The runner scrubs already; scrub again: a termination message is untrusted input.
    signal: JSON = {"at": format_time(now), "session": session, "evidence": snippet(end.evidence)}
    patch: JSON = {"windows": windows}
    body = account_ref(account, rt.account_uids.get((account.namespace, account.name)))
    if isinstance(effect, WallAccount):
        _wall(rt, account, effect, session, body, patch)
        signal.update(type="walled", window=effect.window or "unconfirmed")
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
    elif isinstance(effect, NoteModelCredits):
        # No `window`: the account's wall (if another signal set one) reads its window there.
        signal.update(type="model_credits")
        rt.event(
            body,
            "ModelNeedsCredits",
            f"{snippet(effect.detail, limit=300) or 'the model needs usage credits.'} Session "
            f"{session} moves; the account stays usable for other models; "
            f"evidence: {snippet(effect.evidence) or '-'}",
            warning=True,
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
    await _write_signal(rt, account, patch, now)
    rt.mark_account_dirty(account.namespace, account.name)


def known_wall(account: Account, effect: WallAccount) -> bool:
    """The account is already walled on this window at least as long, bound to the same
    credential if this wall is."""
    if account.walled_until is None or account.walled_until < effect.until:
        return False
    if account.wall_window != effect.window:
        return False
    return not effect.until_secret_changes or account.wall_hash == account.credentials_hash


def _wall(
    rt: Runtime, account: Account, effect: WallAccount, session: str, body: JSON, patch: JSON
) -> None:
    """A wall in the roster overlay and the status patch, and its Event. A wall bound to the
    credential (`until_secret_changes`) records the Secret's hash it holds for."""
    bound = account.credentials_hash if effect.until_secret_changes else None
    rt.roster.note(
        account.namespace,
        account.name,
        walled_until=effect.until,
        wall_window=effect.window,
        wall_hash=bound,
    )
    patch["walledUntil"] = format_time(effect.until)
    patch["walledHash"] = bound  # None deletes a binding an earlier wall left
    if effect.confirmed_by_repetition:
        how = "confirmed by repeated throttling"
    elif effect.window == CREDITS_WINDOW:
        how = "usage credit spent" + (", or until the Secret changes" if bound else "")
    else:
        how = "structured rate-limit signal"
    rt.event(
        body,
        "Walled",
        f"walled until {format_time(effect.until)} "
        f"(window {effect.window or 'unknown'}, {how}); session {session}; "
        f"evidence: {snippet(effect.evidence) or '-'}",
        warning=True,
    )
    metrics.wall(account.namespace, account.name, effect.window)


async def record_windows(rt: Runtime, account: Account, end: AttemptEnd, now: datetime) -> None:
    await _write_signal(rt, account, {"windows": merged_windows(account, end, now)}, now)


async def _write_signal(rt: Runtime, account: Account, patch: JSON, now: datetime) -> None:
    """Write what an attempt's end says about its account. A write refused as it is (its
    evidence, a window name) must not hold the session back: the overlay already carries
    the signal, so the refusal is recorded on the account and the session's pass goes on."""
    write = partial(rt.kube.patch_account_status, account.namespace, account.name)
    try:
        written = await write(patch)
        if written:
            rt.accounts.put(written)  # what its reconcile, started by the watch, reads
    except KubeError as exc:
        if not exc.refused_write:
            raise
        metrics.write_refused(exc.resource, exc.reason)
        log.warning("account %s/%s: signal refused: %s", account.namespace, account.name, exc)
        body = await rt.kube.get_account(account.namespace, account.name)
        if body is not None:
            await refusals.record_rejected(rt, body, exc, write, now)


def drill_progress(rt: Runtime, account: AccountKey, now: datetime) -> None:
    """A session left a drilled account: count it; the account reconciler records the rest."""
    drill = rt.drills.get(account)
    if drill is not None:
        drill.moved += 1
        drill.last_move = now
        rt.mark_account_dirty(*account)
