"""ClaudeAccount and ClusterClaudeAccount reconciliation: credentials, the runtime Secret,
duplicate credentials, derived phase, conditions, drills and wall expiry.

A cluster account (namespace "") reads its Secret from the operator's own namespace and has
no runtime Secret of its own: each session placed on it gets one in its namespace
(reconcilers/credentials.py), since a pod can only mount Secrets of its own namespace."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from headroom.contract.crd import DRILL_VALUE_CHARS
from headroom.contract.scrub import snippet
from headroom.core.accounts import (
    DEFAULT_KEY,
    Account,
    AccountKey,
    AccountPhase,
    CredentialType,
    Window,
    account_state,
    describe,
    first_holder,
    unavailable_until,
    walled,
)
from headroom.core.drill import DRILL_ANNOTATION, DRILL_DURATION_ANNOTATION, drill_duration
from headroom.core.durations import format_time, parse_time
from headroom.core.models import live_model_credits, model_limits, model_walls
from headroom.core.usage import usage_condition
from headroom.core.windows import model_credits_status
from headroom.kube import manifests
from headroom.kube.client import KubeConflict, KubeError
from headroom.reconcilers import metrics, refusals
from headroom.reconcilers.conditions import same_conditions, set_conditions
from headroom.reconcilers.roster import account_from_body, merge
from headroom.reconcilers.runtime import ClusterCredential, Drill, Runtime, retry_delay

log = logging.getLogger("headroom.account")
JSON = dict[str, Any]


def _end_replaced_wall(rt: Runtime, account: Account, patch: JSON, now: datetime) -> Account:
    """A wall bound to a credential the Secret no longer holds is over: clear it, so status
    does not show a reset time for an account that is usable now."""
    bound = account.wall_hash is not None and account.walled_until is not None
    if not bound or account.credentials_hash is None or walled(account, now):
        return account
    patch["walledUntil"] = patch["walledHash"] = None
    rt.roster.note(account.namespace, account.name, walled_until=None, wall_hash=None)
    return replace(account, walled_until=None, wall_hash=None)


def credentials_of(
    spec: JSON, secret: JSON | None, namespace: str
) -> tuple[str | None, str, str, str]:
    """(base64 value or None, key, reason, message) for the account's source Secret. The
    message names Secret and key, never a value."""
    creds = spec.get("credentials") or {}
    kind = CredentialType(creds.get("type", "OAuthToken"))
    key = creds.get("key") or DEFAULT_KEY[kind]
    ref = (creds.get("secretRef") or {}).get("name", "")
    if secret is None:
        return None, key, "SecretNotFound", f"Secret {ref!r} was not found in namespace {namespace}"
    data = secret.get("data") or {}
    if key not in data:
        known = ", ".join(sorted(data)) or "none"
        return (
            None,
            key,
            "KeyNotFound",
            f"Secret {ref!r} has no key {key!r} (keys present: {known})",
        )
    try:
        raw = base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError):
        return None, key, "Unreadable", f"key {key!r} of Secret {ref!r} is not valid base64"
    if not raw.strip():
        return None, key, "EmptyCredential", f"key {key!r} of Secret {ref!r} is empty"
    return data[key], key, "Valid", f"Secret {ref!r} key {key!r} is present"


def credentials_hash(value_b64: str) -> str:
    return "sha256:" + hashlib.sha256(base64.b64decode(value_b64)).hexdigest()


class StaleAccount(Exception):
    """The account changed after the reconcile read it: its status write was refused."""


async def reconcile(rt: Runtime, namespace: str, name: str, *, watched: bool = False) -> None:
    """One reconcile. `watched`: the account as the watches (or this operator's own last
    write) delivered it will do; a wall's expiry and other timers read the API server."""
    async with rt.lock("account", namespace, name):
        try:
            # The read is inside the retry too: a wake-up (e.g. a wall's expiry) whose read
            # failed while the API server was down was dropped for good (tests/faults).
            cached = rt.accounts.get(namespace, name) if watched else None
            body = cached or await rt.kube.get_account(namespace, name)
            if body is None:
                _forget(rt, namespace, name)
                return
            try:
                await _reconcile(rt, body)
            except StaleAccount:
                # Decided on a copy the account has since left behind (a signal written
                # meanwhile): once more on a fresh read.
                await _reconcile_fresh(rt, namespace, name)
        except KubeError as exc:
            metrics.reconcile_error("ClaudeAccount")
            if exc.refused_write:
                metrics.write_refused(exc.resource, exc.reason)
            delay = retry_delay(rt, exc)
            log.warning("account %s/%s: API error %s; retry in %s", namespace, name, exc, delay)
            rt.wakeups.at(("account", namespace, name), rt.clock() + delay)
        except Exception:  # kopf (or the wake-up loop) retries; count it on the way out
            metrics.reconcile_error("ClaudeAccount")
            raise


async def _reconcile_fresh(rt: Runtime, namespace: str, name: str) -> None:
    body = await rt.kube.get_account(namespace, name)
    if body is None:
        _forget(rt, namespace, name)
        return
    rt.accounts.put(body)
    try:
        await _reconcile(rt, body)
    except StaleAccount as stale:
        raise KubeConflict(409, "the account changed twice during one pass", "Conflict") from stale


def _forget(rt: Runtime, namespace: str, name: str) -> None:
    rt.roster.forget(namespace, name)
    rt.accounts.drop(namespace, name)
    rt.wakeups.cancel(("account", namespace, name))
    metrics.forget_account(namespace, name)


async def read_secret(rt: Runtime, namespace: str, name: str) -> JSON | None:
    """The account's Secret as last read, unless a watch has reported a change since."""
    known = rt.secrets.get(namespace, name)
    if known is not None:
        return known
    secret = await rt.kube.get(namespace, "secrets", name)
    if secret is not None:
        rt.secrets.put(namespace, name, secret)
    return secret


async def _reconcile(rt: Runtime, body: JSON) -> None:
    now = rt.clock()
    meta, spec = body["metadata"], body.get("spec") or {}
    status: JSON = dict(body.get("status") or {})
    ns, name = meta.get("namespace") or "", meta["name"]
    key = (ns, name)
    rt.account_uids[key] = meta.get("uid", "")
    secret_ns = ns or rt.settings.cluster_account_namespace
    secret_name = ((spec.get("credentials") or {}).get("secretRef") or {}).get("name", "")
    # The account may have moved to another Secret; forget it under the old one (accounts
    # of the same name in other namespaces, or of the other kind, keep their own entries).
    for refs in rt.secret_refs.values():
        refs.discard(key)
    rt.secret_refs[(secret_ns, secret_name)].add(key)

    secret = await read_secret(rt, secret_ns, secret_name) if secret_name else None
    value, data_key, creds_reason, creds_message = credentials_of(spec, secret, secret_ns)
    patch = await _credential_patch(rt, body, status, value, data_key)

    patch.update(_drill(rt, body, status, now))
    signals = rt.roster.signals(ns, name)
    if signals is not None:
        if (
            signals.walled_until
            and (parse_time(status.get("walledUntil")) or now) < signals.walled_until
        ):
            patch["walledUntil"] = format_time(signals.walled_until)
            patch["walledHash"] = signals.wall_hash
        if signals.auth_failed_hash and status.get("authFailedHash") != signals.auth_failed_hash:
            patch["authFailedHash"] = signals.auth_failed_hash

    merged_status = {**status, **patch}
    account = merge(account_from_body({**body, "status": merged_status}), signals)
    if value is None:
        account = replace(account, credentials_hash=None, credentials_problem=creds_message)
    patch.update(_duplicate_patch(rt, account, status))
    account = replace(account, duplicate_of=patch.get("duplicateOf", account.duplicate_of))
    account = _end_replaced_wall(rt, account, patch, now)
    state = account_state(account, now)
    active = rt.ledger.active(key)
    auth_failed = state.phase is AccountPhase.AUTH_FAILED
    generation = int(meta.get("generation", 1))
    limits = model_limits(account, now)
    patch.update(_model_credits_patch(account, status, now))
    ready_message = state.message
    if state.phase is AccountPhase.AVAILABLE and limits:
        ready_message = f"{state.message}; per-model limits: {'; '.join(limits)}"
    conditions = set_conditions(
        status.get("conditions"),
        [
            ("Ready", state.phase is AccountPhase.AVAILABLE, state.reason, ready_message),
            (
                "CredentialsValid",
                value is not None and not auth_failed,
                "AuthenticationFailed" if auth_failed else creds_reason,
                state.message if auth_failed else creds_message,
            ),
            (
                "DuplicateCredential",
                account.duplicate_of is not None,
                "DuplicateCredential" if account.duplicate_of else "Unique",
                state.message
                if account.duplicate_of
                else "no older account object holds the same credential",
            ),
            (
                "Walled",
                state.phase is AccountPhase.WALLED,
                state.reason if state.phase is AccountPhase.WALLED else "NotWalled",
                state.message
                if state.phase is AccountPhase.WALLED
                else "the account is not walled",
            ),
            (
                "ModelLimited",
                bool(limits),
                "ModelLimitReached" if limits else "NoModelLimit",
                "sessions of these models avoid the account, others still run there: "
                + "; ".join(limits)
                if limits
                else "no per-model limit holds",
            ),
            *_usage_condition(account, status),
        ],
        generation,
        format_time(now),
    )
    # A write that goes through ends an earlier refusal: its condition goes too.
    conditions = refusals.without_rejection(conditions)
    if not same_conditions(status.get("conditions"), conditions):
        patch["conditions"] = conditions
    desired = {
        "phase": state.phase.value,
        "activeSessions": active,
        "observedGeneration": generation,
    }
    patch.update({k: v for k, v in desired.items() if status.get(k) != v})
    recorded = await _write_status(rt, body, patch, now) if patch else True

    previous = status.get("phase")
    if previous != state.phase.value:
        if recorded:  # a change the server refused to record would be announced every retry
            _announce(rt, body, previous, state.phase, state.message)
        if state.phase is AccountPhase.AVAILABLE:
            rt.wake_waiting(ns)
    if state.phase is AccountPhase.AVAILABLE and active < account.max_sessions:
        rt.wake_waiting(ns, account.max_sessions - active)
    until = unavailable_until(account, now)
    if until is not None:
        rt.wakeups.at(("account", ns, name), until)
    for ends in _limit_ends(account, now):  # its condition, metrics and waiting sessions then
        rt.wakeups.at(("account", ns, name), ends)
    metrics.set_account(ns, name, state.phase, active, account.max_sessions)
    metrics.set_windows(
        ns,
        name,
        ((w.name, w.utilization, w.resets_at) for w in account.windows),
        warned=(w.name for w in account.windows if w.warning and not _reset(w, now)),
    )


def _model_credits_patch(account: Account, status: JSON, now: datetime) -> JSON:
    """status.modelCredits as what still holds: an entry whose recheck time has come or whose
    credential the Secret no longer holds is gone (None deletes the field)."""
    wanted = model_credits_status(live_model_credits(account, now))
    if (status.get("modelCredits") or []) == wanted:
        return {}
    return {"modelCredits": wanted or None}


def _reset(window: Window, now: datetime) -> bool:
    return window.resets_at is not None and window.resets_at <= now


def _limit_ends(account: Account, now: datetime) -> list[datetime]:
    """When a per-model limit ends, or a warned window resets."""
    walls = [until for _, until in model_walls(account, now)]
    warnings = [
        w.resets_at for w in account.windows if w.warning and w.resets_at and w.resets_at > now
    ]
    return walls + warnings + [c.retry_at for c in live_model_credits(account, now)]


def _usage_condition(account: Account, status: JSON) -> list[tuple[str, bool, str, str]]:
    had = any(c.get("type") == "UsageReadable" for c in status.get("conditions") or [])
    found = usage_condition(account, had)
    return [found] if found is not None else []


async def _write_status(rt: Runtime, body: JSON, patch: JSON, now: datetime) -> bool:
    """Write the account's status; False when the server refused it as it is. The refusal
    leaves StatusWriteRejected instead and the reconcile goes on (its wake-ups, the waiting
    sessions it wakes, the metrics do not depend on the write); it is tried again after the
    longest backoff."""
    meta = body["metadata"]
    ns, name = meta.get("namespace") or "", meta["name"]
    write = partial(rt.kube.patch_account_status, ns, name)
    try:
        written = await write(patch, str(meta.get("resourceVersion") or ""))
    except KubeConflict as exc:
        rt.accounts.drop(ns, name)
        raise StaleAccount((ns, name)) from exc
    except KubeError as exc:
        if not exc.refused_write:
            raise
        metrics.reconcile_error("ClaudeAccount")
        metrics.write_refused(exc.resource, exc.reason)
        delay = rt.settings.retry.max_backoff
        log.warning("account %s/%s: status write refused: %s; retry in %s", ns, name, exc, delay)
        _own_write(rt, body, await refusals.record_rejected(rt, body, exc, write, now))
        rt.wakeups.at(("account", ns, name), now + delay)
        return False
    _own_write(rt, body, written)
    return True


def _own_write(rt: Runtime, body: JSON, written: JSON | None) -> None:
    """Note the resourceVersion of this reconcile's write: its watch event starts no pass.
    Not during a drill: the reconcile that starts one relies on the next (triggered by its
    own write) to complete it when there is nothing to move."""
    meta = body["metadata"]
    key = (meta.get("namespace") or "", meta["name"])
    if written:
        rt.accounts.put(written)
    if written and key not in rt.drills:
        drill = (meta.get("annotations") or {}).get(DRILL_ANNOTATION)
        version = (written.get("metadata") or {}).get("resourceVersion", "")
        rt.own_account_writes[key] = (version, int(meta.get("generation", 1)), drill)


async def _credential_patch(
    rt: Runtime, body: JSON, status: JSON, value: str | None, data_key: str
) -> JSON:
    """Record the credential's hash; a ClaudeAccount also gets its runtime Secret, a cluster
    account keeps the value for the per-session Secrets its sessions need."""
    ns, name = body["metadata"].get("namespace") or "", body["metadata"]["name"]
    if value is None:
        if not ns:
            rt.cluster_credentials.pop(name, None)
        return {"credentialsHash": None} if status.get("credentialsHash") is not None else {}
    digest = credentials_hash(value)
    if not ns:
        rt.cluster_credentials[name] = ClusterCredential(digest, data_key, value)
        return {"credentialsHash": digest} if status.get("credentialsHash") != digest else {}
    runtime_name = manifests.runtime_secret_name(name)
    if status.get("credentialsHash") == digest and status.get("runtimeSecretName") == runtime_name:
        return {}
    await rt.kube.replace_or_create(ns, "secrets", manifests.runtime_secret(body, data_key, value))
    return {"credentialsHash": digest, "runtimeSecretName": runtime_name}


def _duplicate_patch(rt: Runtime, account: Account, status: JSON) -> JSON:
    """duplicateOf names the older account object that holds the same credential."""
    first = first_holder(account, (a for a in rt.roster.every() if a.key != account.key))
    wanted = describe(first.key) if first is not None else None
    return {"duplicateOf": wanted} if status.get("duplicateOf") != wanted else {}


def stale_duplicates(rt: Runtime, changed: AccountKey) -> list[AccountKey]:
    """After a watch event of account `changed` (its credential may be new, gone or moved):
    the accounts sharing its credential, or named as its duplicates, whose duplicateOf the
    roster as it stands now contradicts. Those need a pass; the rest are right already."""
    everyone = rt.roster.every()
    subject = next((a for a in everyone if a.key == changed), None)
    digest = subject.credentials_hash if subject is not None else None
    named = describe(changed)
    group = [
        a
        for a in everyone
        if a.key != changed
        and ((digest is not None and a.credentials_hash == digest) or a.duplicate_of == named)
    ]
    stale = []
    for account in group:
        first = first_holder(account, (a for a in everyone if a.key != account.key))
        if account.duplicate_of != (describe(first.key) if first is not None else None):
            stale.append(account.key)
    return stale


def _announce(
    rt: Runtime, body: JSON, previous: str | None, phase: AccountPhase, message: str
) -> None:
    if previous is None and phase is AccountPhase.AVAILABLE:
        rt.event(body, phase, "credentials verified; ready for sessions")
        return
    warning = phase in {AccountPhase.AUTH_FAILED, AccountPhase.UNKNOWN, AccountPhase.DUPLICATE}
    rt.event(body, phase, f"{previous or 'new'} -> {phase}: {message}", warning=warning)


def _drill(rt: Runtime, body: JSON, status: JSON, now: datetime) -> JSON:
    """Start a drill when the annotation's value is new; report its progress."""
    meta = body["metadata"]
    key = (meta.get("namespace") or "", meta["name"])
    annotations = meta.get("annotations") or {}
    annotated = annotations.get(DRILL_ANNOTATION)
    # The annotation is free text of any length; status.drill.value holds at most 253 bytes.
    # Recording it whole made the API server refuse every status write of the account (and a
    # DrillStarted Event was posted on each retry): keep a short one-line scrubbed excerpt,
    # and compare that excerpt, so one annotation starts exactly one drill (tests/faults).
    wanted = snippet(annotated, limit=DRILL_VALUE_CHARS) if annotated else None
    drill: JSON = dict(status.get("drill") or {})
    if wanted and wanted != drill.get("value"):
        duration, problem = drill_duration(
            annotations.get(DRILL_DURATION_ANNOTATION), rt.settings.drill_duration
        )
        until = now + duration
        to_move = rt.ledger.sessions_on(key)
        rt.drills[key] = Drill(started=now, sessions=len(to_move))
        rt.roster.note(*key, drill_until=until)
        for ns, session in to_move:
            rt.wakeups.at(("session", ns, session), now)
        rt.event(
            body,
            "DrillStarted",
            f"drill {wanted!r}: treating the account as walled until {format_time(until)}; "
            f"moving {len(to_move)} session(s)" + (f" ({problem})" if problem else ""),
            warning=True,
        )
        return {
            "drill": {
                "value": wanted,
                "startedAt": format_time(now),
                "until": format_time(until),
                "sessionsToMove": len(to_move),
                "sessionsMoved": 0,
            }
        }
    tracker = rt.drills.get(key)
    if tracker is None:
        return {}
    update: JSON = {}
    if drill.get("sessionsMoved") != tracker.moved:
        update["sessionsMoved"] = tracker.moved
    if tracker.moved >= tracker.sessions and not drill.get("completedAt"):
        done = tracker.last_move or now
        update["completedAt"] = format_time(done)
        update["moveSeconds"] = round((done - tracker.started).total_seconds(), 3)
        rt.event(
            body,
            "DrillCompleted",
            f"moved {tracker.moved} session(s) in {update['moveSeconds']}s",
        )
        del rt.drills[key]
    return {"drill": {**drill, **update}} if update else {}
