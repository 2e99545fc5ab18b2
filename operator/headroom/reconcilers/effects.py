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
    ModelCredit,
    describe,
)
from headroom.core.durations import format_time, later
from headroom.core.models import live_model_credits, model_key, model_walls
from headroom.core.outcome import AttemptEnd
from headroom.core.session import (
    AccountEffect,
    BlockAccount,
    NoteModelCredits,
    NoteSuspicion,
    WallAccount,
    WallModel,
)
from headroom.core.windows import merged_windows, model_credits_status
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
    model: str | None = None,
) -> None:
    """`model` is the session's spec.model: the one a model-credits signal is about."""
    if (isinstance(effect, WallAccount) and known_wall(account, effect)) or (
        isinstance(effect, WallModel) and known_model_wall(account, effect, now)
    ):
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
    elif isinstance(effect, WallModel):
        _wall_model(rt, account, effect, session, body)
        signal.update(type="model_walled", window=effect.window)
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
        credit = _remember_model_credits(rt, account, model, now)
        patch["modelCredits"] = model_credits_status((*live_model_credits(account, now), credit))
        rt.event(
            body,
            "ModelNeedsCredits",
            f"{snippet(effect.detail, limit=300) or 'the model needs usage credits.'} Session "
            f"{session} moves; sessions of model {credit.model} avoid the account until "
            f"{format_time(credit.retry_at)} or until its Secret changes; other models still "
            f"run there; evidence: {snippet(effect.evidence) or '-'}",
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


def known_model_wall(account: Account, effect: WallModel, now: datetime) -> bool:
    """The account is already walled on this per-model window at least as long."""
    return any(w == effect.window and t >= effect.until for w, t in model_walls(account, now))


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


def _wall_model(rt: Runtime, account: Account, effect: WallModel, session: str, body: JSON) -> None:
    """A per-model wall: in the overlay at once (the windows in status follow), an Event."""
    signals = rt.roster.signals(account.namespace, account.name)
    known = tuple(w for w in (signals.model_walls if signals else ()) if w[0] != effect.window)
    rt.roster.note(
        account.namespace, account.name, model_walls=(*known, (effect.window, effect.until))
    )
    rt.event(
        body,
        "ModelWalled",
        f"{effect.window} limit reached until {format_time(effect.until)} (session {session});"
        " sessions of that model avoid the account, the others still run there; "
        f"evidence: {snippet(effect.evidence) or '-'}",
        warning=True,
    )
    metrics.wall(account.namespace, account.name, effect.window)


def _remember_model_credits(
    rt: Runtime, account: Account, model: str | None, now: datetime
) -> ModelCredit:
    """Record that the session's model needs credits the account lacks, bound to the
    credential it was learned with, until the credits recheck."""
    retry_at = later(now, rt.settings.retry.credits_recheck)
    credit = ModelCredit(model_key(model), now, retry_at, account.credentials_hash)
    signals = rt.roster.signals(account.namespace, account.name)
    known = tuple(c for c in (signals.model_credits if signals else ()) if c.model != credit.model)
    rt.roster.note(account.namespace, account.name, model_credits=(*known, credit))
    return credit


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
