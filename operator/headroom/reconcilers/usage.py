"""Live usage: a background job that reads each busy account's plan utilization from the usage
endpoint (`GET /api/oauth/usage`) at most once per interval, and records it in the account's
status.windows, where placement reads it.

Traffic grows with accounts, not sessions: one read per interval per account that has
sessions running (or while sessions wait for headroom), whatever their number. It never
touches a session: the failover path (session reconciles, placement) neither waits for it
nor shares a lock with it; reads run as tasks of their own, a few at a time, each with a
timeout. Only the active replica reads (it waits on `rt.active`, as the other timers do).

A 429 pauses that account's reads for retry-after (else an exponential backoff up to an
hour); a 403 (a credential without the user:profile scope, such as a `claude setup-token`
token) records status.usageDeniedHash, whence condition UsageReadable=False, and the
credential is not read again until the Secret's content changes. The token is sent in one
header and goes nowhere else: not in logs, Events, status or exception text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from headroom.anthropic.usage import Answer, Denied, RateLimited, Report, Unauthorized
from headroom.core import usage
from headroom.core.accounts import Account, AccountKey, AccountPhase, CredentialType, describe
from headroom.core.accounts import account_state as derive_state
from headroom.core.durations import parse_time
from headroom.kube.client import KubeError
from headroom.reconcilers import effects, metrics
from headroom.reconcilers.account import credentials_hash, read_secret
from headroom.reconcilers.runtime import Runtime

log = logging.getLogger("headroom.usage")
READ_TIMEOUT = 30.0  # the Secret, the endpoint and the status write together
DEFAULT_CONCURRENCY = 4


class UsageReader(Protocol):
    async def read(self, token: str) -> Answer: ...


@dataclass
class UsagePoller:
    rt: Runtime
    api: UsageReader
    interval: timedelta
    concurrency: int = DEFAULT_CONCURRENCY
    states: dict[AccountKey, usage.PollState] = field(default_factory=dict)
    # Credentials refused (403, 401) by hash: skipped at once, before status says so.
    refused: dict[AccountKey, str] = field(default_factory=dict)
    in_flight: dict[AccountKey, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    async def run(self) -> None:
        tick = min(5.0, max(0.5, self.interval.total_seconds() / 4))
        while True:
            await self.rt.active.wait()  # a standby replica reads nothing
            self.start_due()
            await asyncio.sleep(tick)

    def start_due(self) -> list[asyncio.Task[None]]:
        """Start a read for every account that is due; returns the tasks (tests await them)."""
        now = self.rt.clock()
        started = []
        for account in self.rt.roster.every():
            if account.key in self.in_flight or not self.wanted(account, now):
                continue
            task = asyncio.get_running_loop().create_task(self._guarded(account))
            self.in_flight[account.key] = task
            task.add_done_callback(self._finished(account.key))
            started.append(task)
        return started

    def _finished(self, key: AccountKey) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self.in_flight.pop(key, None)

        return forget

    def wanted(self, account: Account, now: datetime) -> bool:
        """An OAuth account in use (or wanted: sessions wait) that may read usage and is due."""
        if account.credential_type is not CredentialType.OAUTH_TOKEN:
            return False  # API keys have no usage endpoint; a credentials file is not read here
        digest = account.credentials_hash
        if digest is None or digest in (account.usage_denied_hash, self.refused.get(account.key)):
            return False
        if derive_state(account, now).phase in {AccountPhase.AUTH_FAILED, AccountPhase.PAUSED,
                                                 AccountPhase.DUPLICATE}:  # fmt: skip
            return False
        busy = self.rt.ledger.active(account.key) > 0 or self._wanted_by_waiters(account)
        state = self.states.get(account.key)
        return busy and (state is None or state.next_at <= now)

    def _wanted_by_waiters(self, account: Account) -> bool:
        """Sessions wait for headroom where this account could serve them: its namespace,
        or any namespace for a cluster account."""
        if account.cluster:
            return any(self.rt.waiting.values())
        return bool(self.rt.waiting.get(account.namespace))

    async def _guarded(self, account: Account) -> None:
        async with self._slots:
            try:
                await asyncio.wait_for(self.read(account), READ_TIMEOUT)
            except (TimeoutError, KubeError) as exc:
                self._backoff(account, type(exc).__name__)
            except Exception as exc:  # never the text: it could quote a request
                log.error("usage read of %s failed: %s", describe(account.key), type(exc).__name__)
                self._backoff(account, type(exc).__name__)

    async def read(self, account: Account) -> None:
        token, digest = await self._token(account)
        if token is None or digest is None or digest != account.credentials_hash:
            # The Secret changed under the account: its reconcile catches up first, and the
            # next read waits an interval rather than a tick.
            self.states[account.key] = usage.after_read(self.rt.clock(), self.interval)
            return
        answer = await self.api.read(token)
        now = self.rt.clock()
        key = account.key
        if isinstance(answer, Report):
            metrics.usage_read(*key, "ok")
            self.states[key] = usage.after_read(now, self.interval)
            await self._record(account, usage.parse_report(answer.doc), now)
        elif isinstance(answer, RateLimited):
            metrics.usage_read(*key, "rate_limited")
            state = self.states.get(key, usage.PollState(now))
            self.states[key] = usage.after_rate_limit(state, now, self.interval, answer.retry_after)
            log.info("usage of %s: 429; next read at %s", describe(key), self.states[key].next_at)
        elif isinstance(answer, Denied):
            metrics.usage_read(*key, "denied")
            self.refused[key] = digest
            await self._deny(account, digest, answer.error_type)
        elif isinstance(answer, Unauthorized):
            metrics.usage_read(*key, "unauthorized")
            self.refused[key] = digest  # attempts report what a 401 means for sessions
            log.warning("usage of %s: 401; not read again until the Secret changes",
                        describe(key))  # fmt: skip
        else:
            self._backoff(account, answer.kind)

    def _backoff(self, account: Account, kind: str) -> None:
        metrics.usage_read(*account.key, "failed")
        now = self.rt.clock()
        state = self.states.get(account.key, usage.PollState(now))
        self.states[account.key] = usage.after_failure(state, now, self.interval)
        log.info("usage read of %s failed (%s); next at %s", describe(account.key), kind,
                 self.states[account.key].next_at)  # fmt: skip

    async def _token(self, account: Account) -> tuple[str | None, str | None]:
        """(token, hash of the Secret's value) as the account reconciler hashes it."""
        value_b64 = await self._secret_value(account)
        if value_b64 is None:
            return None, None
        try:
            token = base64.b64decode(value_b64, validate=True).decode("utf-8").strip()
        except (binascii.Error, ValueError):
            return None, None
        return (token or None), credentials_hash(value_b64)

    async def _secret_value(self, account: Account) -> str | None:
        if account.cluster:
            held = self.rt.cluster_credentials.get(account.name)
            return held.value_b64 if held is not None else None
        source = next((ref for ref, readers in self.rt.secret_refs.items()
                       if account.key in readers), None)  # fmt: skip
        if source is None:
            return None
        secret = await read_secret(self.rt, *source)
        value = ((secret or {}).get("data") or {}).get(account.credential_key)
        return value if isinstance(value, str) else None

    async def _record(
        self, account: Account, report: tuple[usage.ReportedWindow, ...], now: datetime
    ) -> None:
        """Write the endpoint's windows (and end a wall whose window has reset), under the
        account's lock so that its reconcile never writes an older copy over them."""
        ns, name = account.key
        async with self.rt.lock("account", ns, name):
            current = self.rt.roster.get(ns, name) or account
            windows = usage.merged_usage_windows(current, report, now)
            patch: dict[str, object] = {}
            if _without_times(windows) != _without_times(
                usage.merged_usage_windows(current, (), now)
            ):
                patch["windows"] = windows
            reset = usage.wall_reset(current, report, now)
            if reset:
                patch.update(walledUntil=None, walledHash=None)
                self.rt.roster.note(ns, name, walled_until=None, wall_window=None, wall_hash=None)
            if patch:
                await self._write(ns, name, patch)
        metrics.set_windows(ns, name, (_gauge_entry(w) for w in windows))
        if reset:
            body = effects.account_ref(current, self.rt.account_uids.get(current.key))
            message = f"the usage endpoint reports window {current.wall_window} reset early"
            self.rt.event(body, "WallReset", message + "; the account is usable again")
            self.rt.mark_account_dirty(ns, name)

    async def _write(self, ns: str, name: str, patch: dict[str, object]) -> None:
        written = await self.rt.kube.patch_account_status(ns, name, patch)
        if written:
            self.rt.accounts.put(written)  # what the reconcile its watch event starts reads

    async def _deny(self, account: Account, digest: str, error_type: str) -> None:
        ns, name = account.key
        await self._write(ns, name, {"usageDeniedHash": digest})
        body = effects.account_ref(account, self.rt.account_uids.get(account.key))
        self.rt.event(body, "UsageNotPermitted", usage.denied_message(error_type),
                      warning=True)  # fmt: skip
        self.rt.mark_account_dirty(ns, name)


def _gauge_entry(window: dict[str, Any]) -> tuple[str, float, datetime | None]:
    """A status.windows entry as the utilization and reset gauges take it."""
    return window["name"], float(window["utilization"]), parse_time(window.get("resetsAt"))


def _without_times(windows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The windows without observedAt: a read that only confirms them writes nothing."""
    return [{k: v for k, v in w.items() if k != "observedAt"} for w in windows]
