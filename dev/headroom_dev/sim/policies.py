"""The policies compared, each playing the operator's part against the same simulated world.

Headroom's policy is the operator's own core, called as the reconcilers call it: `place()` for
every placement, `after_attempt()` for every attempt's end, `record_swap()` for every start,
and `core.windows.merged_windows()` for what an account's status learns from a termination
message. The glue around them (a FIFO of waiting sessions, wake-ups at the earliest reset and
whenever a slot frees) is modelled on `reconcilers/session.py` and `runtime.wake_waiting`.

The other policies are what fleets run today: a pinned assignment with or without a rescue
daemon, round-robin and least-loaded balancers. All of
them respect maxSessions (the engine refuses otherwise) and all learn walls the same way.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import replace
from datetime import datetime
from functools import partial

from headroom.contract.termination import Outcome
from headroom.core import placement, session
from headroom.core.accounts import Account, Window
from headroom.core.models import MODEL_SCOPED_WINDOWS, model_windows
from headroom.core.outcome import AttemptEnd
from headroom.core.selectors import matches
from headroom.core.usage import ReportedWindow, merged_usage_windows, wall_reset
from headroom.core.windows import merged_windows, window_from_status
from headroom_dev.sim.engine import SessionRun, Sim
from headroom_dev.sim.model import CREDENTIAL, NAMESPACE, AccountSpec, clock, seconds

MIN_RETRY_S = 1.0  # never re-decide sooner than this after a "no", whatever the clock says
USAGE_POLL_S = 60.0  # the usage endpoint, at most once a minute per account


class Policy(ABC):
    key: str = ""
    title: str = ""

    def __init__(self) -> None:
        self.sim: Sim | None = None

    def bind(self, sim: Sim) -> None:
        self.sim = sim

    @property
    def world(self) -> Sim:
        assert self.sim is not None, "bind() first"
        return self.sim

    @abstractmethod
    def arrived(self, run: SessionRun) -> None: ...

    @abstractmethod
    def ended(self, run: SessionRun, end: AttemptEnd) -> None:
        """An attempt of `run` ended (completed, walled or throttled). Its slot is already free."""

    def capacity_changed(self) -> None:  # noqa: B027 - most policies do not care
        """A slot was freed (after `ended`)."""

    def reported(self, account: str, report: AttemptEnd) -> None:  # noqa: B027
        """Running attempts on `account` reported its windows (a warning threshold passed)."""


class Queueing(Policy):
    """Event-driven placement with a waiting queue: how the operator works, shared by the
    balancers so that they differ from Headroom only in *which* account they pick."""

    react_s = 1.0  # pod terminated -> decision (the operator's failover latency target)
    polls_usage = False  # reads every account's usage once a minute (GET /api/oauth/usage)

    def bind(self, sim: Sim) -> None:
        super().bind(sim)
        self.waiting: dict[str, float] = {}  # session -> waiting since (FIFO order)
        self._wake_due: dict[str, float] = {}
        self.usage: dict[str, tuple[ReportedWindow, ...]] = {}  # what the last poll said
        self._polled_at = -math.inf

    def poll_usage(self) -> None:
        """Every account's usage, read at most once a minute. Read when a decision needs it
        rather than on a timer: the same staleness bound (under a minute), at a fraction of
        the simulator's cost."""
        if not self.polls_usage or self.world.now - self._polled_at < USAGE_POLL_S:
            return
        self._polled_at = self.world.now
        for name in self.world.accounts:
            self.observed(name, self.world.usage(name))

    def observed(self, account: str, report: tuple[ReportedWindow, ...]) -> None:
        """The account's windows as the usage endpoint gave them."""
        self.usage[account] = report

    @abstractmethod
    def choose(self, run: SessionRun) -> tuple[str | None, float | None]:
        """The account to start on, or (None, when to try again; None = when a slot frees)."""

    def arrived(self, run: SessionRun) -> None:
        self.wake(run, self.world.now + self.react_s)

    def wake(self, run: SessionRun, when: float) -> None:
        """One pending wake-up per session; an earlier one wins (like reconcilers.wakeups)."""
        due = self._wake_due.get(run.name)
        if due is not None and due <= when:
            return
        self._wake_due[run.name] = when
        self.world.call_at(when, lambda: self._fire(run, when))

    def _fire(self, run: SessionRun, when: float) -> None:
        if self._wake_due.get(run.name) != when:
            return  # superseded by an earlier wake-up
        del self._wake_due[run.name]
        if run.placeable:
            self.try_place(run)

    def try_place(self, run: SessionRun) -> None:
        self.poll_usage()
        account, retry_at = self.choose(run)
        if account is not None:
            self.waiting.pop(run.name, None)
            self.world.start(run, account)
            return
        self.waiting.setdefault(run.name, self.world.now)
        if retry_at is not None:
            self.wake(run, max(retry_at, self.world.now + MIN_RETRY_S))

    def open_slots(self) -> int:
        """Free slots on accounts this policy would place on now."""
        return sum(max(0, self.world.free_slots(a)) for a in self.world.accounts)

    def capacity_changed(self) -> None:
        # Wake as many of the longest-waiting sessions as there are slots (no thundering herd).
        self.poll_usage()
        free = self.open_slots()
        for name, _ in sorted(self.waiting.items(), key=lambda kv: kv[1])[:free]:
            self.wake(self.world.runs[name], self.world.now + self.react_s)


# --- Headroom ---------------------------------------------------------------------------


class HeadroomPolicy(Queueing):
    """The operator without the usage endpoint: it learns windows from attempts' ends and
    from the warnings running attempts report."""

    key = "headroom"
    title = "Headroom, attempt reports only"

    def __init__(
        self,
        failover: session.FailoverPolicy | None = None,
        retry: session.RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.failover = failover or session.FailoverPolicy()
        self.retry = retry or session.RetryPolicy()

    def bind(self, sim: Sim) -> None:
        # The roster as the operator sees it: spec from the objects, status from signals.
        self.roster = {a.name: _account(a) for a in sim.scenario.accounts}
        self.progress: dict[str, session.Progress] = {}
        self.moves: dict[str, session.Reschedule] = {}
        super().bind(sim)

    def arrived(self, run: SessionRun) -> None:
        self.progress[run.name] = session.Progress()
        super().arrived(run)

    def observed(self, account: str, report: tuple[ReportedWindow, ...]) -> None:
        """What reconcilers/usage.py writes from an endpoint answer: the merged windows, and
        the end of a wall whose window has already reset."""
        super().observed(account, report)
        now, current = clock(self.world.now), self.roster[account]
        windows = _windows(merged_usage_windows(current, report, now))
        if wall_reset(current, report, now):
            current = replace(current, walled_until=None, wall_window=None)
        self.roster[account] = replace(current, windows=windows)

    def reported(self, account: str, report: AttemptEnd) -> None:
        """Running attempts' warnings, written to status.windows as an attempt's end is."""
        now = clock(self.world.now)
        windows = _windows(merged_windows(self.roster[account], report, now))
        self.roster[account] = replace(self.roster[account], windows=windows)

    def open_slots(self) -> int:
        # As the account reconciler does: only an Available account's free slots wake the queue.
        now, load = clock(self.world.now), self.world.load()
        return sum(
            a.max_sessions - load.get(a.name, 0)
            for a in self.roster.values()
            if placement.schedulable(a, load, now)
        )

    def choose(self, run: SessionRun) -> tuple[str | None, float | None]:
        now = clock(self.world.now)
        move = self.moves.get(run.name)
        if move is not None and move.not_before is not None and move.not_before > now:
            return None, seconds(move.not_before)  # backing off (a throttle)
        previous = self.progress[run.name].account
        request = placement.Request(
            selector=run.spec.selector,
            avoid=previous if move is not None and move.leave else None,
            prefer=previous if move is not None and not move.leave else None,
            model=run.spec.model,
        )
        choice = placement.place(list(self.roster.values()), self.world.load(), request, now)
        if isinstance(choice, placement.NoHeadroom):
            reset = choice.earliest_reset
            return None, seconds(reset) if reset is not None else None
        self.progress[run.name] = session.record_swap(self.progress[run.name], choice.account, now)
        self.moves.pop(run.name, None)
        return choice.account, None

    def ended(self, run: SessionRun, end: AttemptEnd) -> None:
        now = clock(self.world.now)
        progress = self.progress[run.name]
        decision = session.after_attempt(progress, end, self.failover, self.retry, now)
        self.progress[run.name] = decision.progress
        self._learn(progress.account or "", end, decision.effect, now)
        step = decision.step
        if isinstance(step, session.Finish):
            if step.phase is session.SessionPhase.FAILED:
                self.world.fail(run)
            return
        self.moves[run.name] = step
        self.wake(run, self.world.now + self.react_s)

    def _learn(
        self, name: str, end: AttemptEnd, effect: session.AccountEffect | None, now: datetime
    ) -> None:
        """What effects.apply / effects.record_windows write to the account's status."""
        account = self.roster[name]
        account = replace(account, windows=_windows(merged_windows(account, end, now)))
        if isinstance(effect, session.WallAccount):
            account = replace(account, walled_until=effect.until, wall_window=effect.window)
            # The account reconciler wakes the queue when the account is Available again.
            self.world.call_at(seconds(effect.until), self.capacity_changed)
        elif isinstance(effect, session.WallModel):
            account = replace(account, windows=_with_model_wall(account.windows, effect))
        self.roster[name] = account


class HeadroomLive(HeadroomPolicy):
    """The operator as it runs with live usage: the same core, and every account's windows
    read from the usage endpoint once a minute (as well as from attempts' reports)."""

    key = "headroom-live"
    title = "Headroom, live usage (polled each minute)"
    polls_usage = True


def _windows(entries: list[dict[str, object]]) -> tuple[Window, ...]:
    """status.windows as the account reconciler reads it back."""
    return tuple(window_from_status(entry) for entry in entries)


def _with_model_wall(windows: tuple[Window, ...], effect: session.WallModel) -> tuple[Window, ...]:
    """What the roster's overlay adds for a per-model wall (reconcilers/roster.py
    `_with_model_walls`, which the simulator cannot import): the window rejected until the
    wall's end, when status does not already say so for longer. Placement reads it there."""
    by_name = {w.name: w for w in windows}
    known = by_name.get(effect.window)
    if (
        known is None
        or known.status != "rejected"
        or (known.resets_at or effect.until) < effect.until
    ):
        by_name[effect.window] = Window(effect.window, "rejected", 1.0, effect.until)
    return tuple(by_name[name] for name in sorted(by_name))


def _account(spec: AccountSpec) -> Account:
    return Account(
        namespace=NAMESPACE,
        name=spec.name,
        labels=dict(spec.labels),
        max_sessions=spec.max_sessions,
        priority=spec.priority,
        credential_type=CREDENTIAL,
        credentials_hash="sha256:sim",  # verified credentials: the sim has no 401s
    )


# --- balancers ----------------------------------------------------------------------------


class Balancer(Queueing):
    """Places on any matching account that is not benched and has a free slot. A wall benches
    the account until its reset; a bare 429 benches it for `bench_s` and moves the session
    (per-request proxies cannot tell a throttle from a wall)."""

    bench_s = 60.0

    def bind(self, sim: Sim) -> None:
        super().bind(sim)
        # (account, window) -> benched until; window None: every session's (a shared window, a
        # bare 429); a per-model window (seven_day_opus): the sessions whose model draws on it.
        self.benched: dict[tuple[str, str | None], float] = {}
        self.names = sorted(a.name for a in sim.scenario.accounts)

    def free(self, name: str, model: str | None) -> bool:
        """Not benched for a session of `model` (None: for every model)."""
        now = self.world.now
        windows = model_windows(model, CREDENTIAL) if model is not None else frozenset()
        return all(self.benched.get((name, w), 0.0) <= now for w in (None, *windows))

    def candidates(self, run: SessionRun) -> list[str]:
        return [
            name
            for name in self.names
            if self.free(name, run.spec.model)
            and self.world.free_slots(name) > 0
            and matches(run.spec.selector, self.world.accounts[name].spec.labels)
        ]

    @abstractmethod
    def pick(self, names: list[str]) -> str: ...

    def open_slots(self) -> int:
        return sum(max(0, self.world.free_slots(n)) for n in self.names if self.free(n, None))

    def choose(self, run: SessionRun) -> tuple[str | None, float | None]:
        names = self.candidates(run)
        if names:
            return self.pick(names), None
        later = [t for t in self.benched.values() if t > self.world.now]
        return None, min(later) if later else None

    def ended(self, run: SessionRun, end: AttemptEnd) -> None:
        if end.outcome is Outcome.COMPLETED:
            return
        # A per-model wall benches the account for that window's models only.
        window = end.window if end.window in MODEL_SCOPED_WINDOWS else None
        key = (run.account or "", window)
        self.benched[key] = bench_until(self.world.now, end, self.bench_s)
        self.world.call_at(self.benched[key], self.capacity_changed)
        self.wake(run, self.world.now + self.react_s)


def bench_until(now: float, end: AttemptEnd, otherwise_s: float) -> float:
    if end.outcome is Outcome.WALLED and end.resets_at is not None:
        return max(seconds(end.resets_at), now)
    return now + otherwise_s


class RoundRobin(Balancer):
    key = "round-robin"
    title = "Round-robin"

    def bind(self, sim: Sim) -> None:
        super().bind(sim)
        self.turn = 0

    def pick(self, names: list[str]) -> str:
        # The next account in the rotation that can take the session.
        order = self.names[self.turn :] + self.names[: self.turn]
        chosen = next(n for n in order if n in names)
        self.turn = (self.names.index(chosen) + 1) % len(self.names)
        return chosen


class LeastLoaded(Balancer):
    key = "least-loaded"
    title = "Least-loaded"

    def pick(self, names: list[str]) -> str:
        def busy(name: str) -> tuple[float, str]:
            spec = self.world.accounts[name].spec
            return (1 - self.world.free_slots(name) / spec.max_sessions, name)

        return min(names, key=busy)


# --- pinned sessions and the seeds' rescue daemon ----------------------------------------


class Pinned(Policy):
    """Each session is pinned to an account when it arrives (a fixed rotation over the pool's
    slots). Nothing is event-driven: a loop looks at the sessions every `poll_s` seconds.

    Without rescue, a walled session waits for its own account to reset. With rescue (a
    hand-built rescue daemon), the poll finds walled sessions and moves them one at a time
    (one mutex, `rescue_s` each) to the first account of its list that is not walled and has
    a free slot; a bare 429 counts as a wall (the mistake that makes sessions ping-pong)."""

    poll_s = 60.0
    rescue_s = 15.0
    bench_s = 60.0

    def __init__(self, rescue: bool) -> None:
        super().__init__()
        self.rescue = rescue
        self.key = "pinned+rescue" if rescue else "pinned"
        self.title = "Pinned + rescue daemon (seeds)" if rescue else "Pinned, wait for reset"

    def bind(self, sim: Sim) -> None:
        super().bind(sim)
        self.slots = [a.name for a in sim.scenario.accounts for _ in range(a.max_sessions)]
        self.arrivals = 0
        self.pinned: dict[str, str] = {}
        self.benched: dict[str, float] = {}
        self.stuck: dict[str, float] = {}  # session -> since (FIFO)
        self.daemon_free_at = 0.0
        self.poll_scheduled = False
        self.rescuing: set[str] = set()

    def arrived(self, run: SessionRun) -> None:
        self.pinned[run.name] = self.slots[self.arrivals % len(self.slots)]
        self.arrivals += 1
        self.stuck[run.name] = self.world.now
        self._schedule_poll()

    def ended(self, run: SessionRun, end: AttemptEnd) -> None:
        if end.outcome is Outcome.COMPLETED:
            return
        self.benched[run.account or ""] = bench_until(self.world.now, end, self.bench_s)
        self.pinned[run.name] = run.account or self.pinned[run.name]
        self.stuck[run.name] = self.world.now
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        if self.poll_scheduled:
            return
        self.poll_scheduled = True
        tick = (math.floor(self.world.now / self.poll_s) + 1) * self.poll_s
        self.world.call_at(tick, self._poll)

    def _poll(self) -> None:
        self.poll_scheduled = False
        now = self.world.now
        for name, _ in sorted(self.stuck.items(), key=lambda kv: kv[1]):
            run = self.world.runs[name]
            if not run.placeable:
                self.stuck.pop(name)
                continue
            home = self.pinned[name]
            if self._usable(home):
                self._start(run, home)  # its own account is back (or was never walled)
            elif self.rescue and self.benched.get(home, 0.0) > now and name not in self.rescuing:
                # One rescue at a time; the target is chosen when the daemon gets to it.
                self.rescuing.add(name)
                self.daemon_free_at = max(self.daemon_free_at, now) + self.rescue_s
                self.world.call_at(self.daemon_free_at, partial(self._rescue, run))
        if self.stuck:
            self._schedule_poll()

    def _rescue(self, run: SessionRun) -> None:
        self.rescuing.discard(run.name)
        if not run.placeable or run.name not in self.stuck:
            return
        target = next((n for n in self.benched_order() if self._usable(n)), None)
        if target is not None:
            self.pinned[run.name] = target
            self._start(run, target)

    def benched_order(self) -> list[str]:
        return [a.spec.name for a in self.world.accounts.values()]

    def _usable(self, name: str) -> bool:
        return self.benched.get(name, 0.0) <= self.world.now and self.world.free_slots(name) > 0

    def _start(self, run: SessionRun, account: str) -> None:
        self.stuck.pop(run.name, None)
        self.world.start(run, account)


class DrainSoonest(Balancer):
    """better-ccflare's session strategy: the account whose five-hour window resets first
    (known from the usage endpoint, polled once a minute), so quota about to expire is spent
    first; accounts with no window under way come last."""

    key = "drain-soonest"
    title = "Drain-soonest"
    polls_usage = True

    def pick(self, names: list[str]) -> str:
        def reset(name: str) -> tuple[float, str]:
            five = [w for w in self.usage.get(name, ()) if w.name == "five_hour" and w.resets_at]
            return (
                min((seconds(w.resets_at) for w in five if w.resets_at), default=math.inf),
                name,
            )

        return min(names, key=reset)


def all_policies() -> list[Policy]:
    """Fresh instances, in the order the report shows them."""
    return [
        Pinned(rescue=False),
        Pinned(rescue=True),
        RoundRobin(),
        LeastLoaded(),
        DrainSoonest(),
        HeadroomPolicy(),
        HeadroomLive(),
    ]
