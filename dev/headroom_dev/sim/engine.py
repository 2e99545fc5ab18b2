"""The discrete-event engine: true quota, sessions consuming it, attempts that end.

Consumption is piecewise linear: between two events every consuming session draws tokens at a
constant rate from every window of its account, so the next window exhaustion, work
completion or throttle is computed exactly, never found by ticking. The engine is the world
(the API and the pods); a policy is the operator. The policy only learns what a real operator
learns: an attempt's end, as the pod's termination message reports it (`AttemptEnd`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING

from headroom.contract.termination import Outcome
from headroom.core.accounts import Account
from headroom.core.ledger import Ledger
from headroom.core.outcome import AttemptEnd
from headroom.core.usage import ReportedWindow
from headroom_dev.sim.model import NAMESPACE, AccountSpec, Scenario, SessionSpec, WindowSpec, clock

if TYPE_CHECKING:
    from headroom_dev.sim.policies import Policy

EPS_S = 1e-6  # events closer than this are simultaneous
MAX_STEPS = 5_000_000


class SimError(RuntimeError):
    """A policy broke a rule every policy must keep (maxSessions, one attempt at a time)."""


class Phase(Enum):
    ARRIVING = "arriving"  # not yet in the system
    STARTING = "starting"  # pod created, CLI not talking yet
    RESUMING = "resuming"  # re-reading the conversation: tokens, no work
    WORKING = "working"
    BLOCKED = "blocked"  # between attempts: walled, waiting, backing off
    DONE = "done"
    FAILED = "failed"


@dataclass
class WindowUse:
    spec: WindowSpec
    used: float = 0.0
    resets_at: float | None = None  # None: not started; starts at the next use
    fills: list[float] = field(default_factory=list)  # used/budget of every finished instance
    warned: bool = False  # this instance passed its warning threshold (reported once)

    def exhausted(self) -> bool:
        # A relative tolerance, so float error can never leave a sliver that takes an
        # infinitesimal step to spend.
        return self.resets_at is not None and self.used >= self.spec.budget * (1 - 1e-9)

    def fill(self) -> float:
        return self.used / self.spec.budget

    def status(self) -> str:
        """What a rate-limit event says of it: rejected, allowed_warning past the threshold."""
        if self.exhausted():
            return "rejected"
        return "allowed_warning" if self.past_warning() else "allowed"

    def past_warning(self) -> bool:
        # The same relative tolerance as exhausted(): no infinitesimal step to the threshold.
        return self.used >= self.spec.warn_at * self.spec.budget * (1 - 1e-9)


@dataclass
class AccountUse:
    spec: AccountSpec
    windows: list[WindowUse]
    spent: float = 0.0  # every token charged, useful or not

    def exhausted_window(self, model: str) -> WindowUse | None:
        """The spent window a session of `model` meets (a spent `seven_day_opus` stops only
        opus sessions)."""
        full = [w for w in self.windows if w.exhausted() and w.spec.applies_to(model)]
        # The window that frees last is the one the wall is about (weekly beats five-hour).
        return max(full, key=lambda w: w.resets_at or 0.0) if full else None


@dataclass
class SessionRun:
    spec: SessionSpec
    phase: Phase = Phase.ARRIVING
    account: str | None = None
    phase_ends: float = 0.0  # end of STARTING or RESUMING
    resume_rate: float = 0.0
    work_done: float = 0.0
    next_throttle: int = 0
    attempts: int = 0
    swaps: int = 0
    walls: int = 0
    throttled: int = 0
    working_s: float = 0.0
    overhead_s: float = 0.0  # starting + resuming
    reread: float = 0.0  # tokens spent re-reading context
    ended_at: float | None = None
    walled_at: float | None = None  # the first wall since the session last worked
    recoveries: list[float] = field(default_factory=list)  # wall -> working again, seconds

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rate(self) -> float:
        if self.phase is Phase.WORKING:
            return self.spec.appetite
        if self.phase is Phase.RESUMING:
            return self.resume_rate
        return 0.0

    @property
    def placeable(self) -> bool:
        return self.phase is Phase.BLOCKED


class Sim:
    def __init__(self, scenario: Scenario, policy: Policy) -> None:
        self.scenario = scenario
        self.costs = scenario.costs
        self.horizon = scenario.horizon_s
        self.now = 0.0
        self.policy = policy
        self.ledger = Ledger()  # the operator's own slot bookkeeping, for every policy
        self.accounts = {
            a.name: AccountUse(a, [_window(w) for w in a.windows]) for a in scenario.accounts
        }
        self.runs = {s.name: SessionRun(s) for s in scenario.sessions}
        self._live: dict[str, SessionRun] = {}  # starting, resuming or working
        self.steps = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        for run in self.runs.values():
            self.call_at(run.spec.arrival_s, partial(self._arrive, run))

    # --- what policies may do ---------------------------------------------------------

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (max(when, self.now), next(self._seq), action))

    def load(self) -> dict[str, int]:
        return {
            name: n
            for name, n in self.ledger.load(Account(NAMESPACE, a) for a in self.accounts).items()
            if n
        }

    def free_slots(self, account: str) -> int:
        spec = self.accounts[account].spec
        return spec.max_sessions - self.ledger.active((NAMESPACE, account))

    def start(self, run: SessionRun, account: str) -> None:
        """Begin an attempt of `run` on `account`; the slot is held from now on."""
        if not run.placeable:
            raise SimError(f"{run.name} cannot start: it is {run.phase.value}")
        if self.free_slots(account) <= 0:
            raise SimError(f"{account} is full: {run.name} would exceed maxSessions")
        self.ledger.assign((NAMESPACE, run.name), (NAMESPACE, account))
        if run.account is not None and run.account != account:
            run.swaps += 1
        run.account = account
        self._live[run.name] = run
        run.attempts += 1
        run.phase = Phase.STARTING
        run.phase_ends = self.now + self.costs.start_s

    def fail(self, run: SessionRun) -> None:
        """The policy gives up on the session (e.g. maxSwaps)."""
        if run.phase is not Phase.BLOCKED:
            raise SimError(f"{run.name} cannot fail while {run.phase.value}")
        run.phase = Phase.FAILED
        run.ended_at = self.now

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> Sim:
        self.policy.bind(self)
        while True:
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise SimError(f"no progress after {MAX_STEPS} steps at t={self.now:.3f}s")
            due = min(self._next_internal(), self._timers[0][0] if self._timers else self.horizon)
            due = min(due, self.horizon)
            self._advance(due - self.now)
            self.now = due
            if self.now >= self.horizon - EPS_S:
                break
            self._settle()
            while self._timers and self._timers[0][0] <= self.now + EPS_S:
                _, _, action = heapq.heappop(self._timers)
                action()
                self._settle()
        return self

    def usage(self, account: str) -> tuple[ReportedWindow, ...]:
        """The account's true windows as the usage endpoint answers (core.usage.parse_report's
        shape): utilization and reset time of every window under way."""
        return tuple(
            ReportedWindow(w.spec.name, min(1.0, w.fill()), clock(w.resets_at))
            for w in self.accounts[account].windows
            if w.resets_at is not None
        )

    def running_report(self, account: str) -> AttemptEnd:
        """What the running attempts' rate-limit events tell of their account: the windows they
        draw on, and the ones past their threshold as allowed_warning. In the termination
        message's shape (core.windows.merged_windows reads it); the outcome is not read."""
        models = {r.spec.model for r in self._live.values() if r.account == account}
        windows = [
            w
            for w in self.accounts[account].windows
            if w.resets_at is not None and any(w.spec.applies_to(m) for m in models)
        ]
        return AttemptEnd(
            outcome=Outcome.COMPLETED,
            utilization={w.spec.name: min(1.0, w.fill()) for w in windows},
            warnings={w.spec.name: w.spec.warn_at for w in windows if w.past_warning()},
        )

    def _next_internal(self) -> float:
        soonest = self.horizon
        rates = self._rates()
        for acc in self.accounts.values():
            for w in acc.windows:
                if w.resets_at is not None:
                    soonest = min(soonest, w.resets_at)
                    rate = self._window_rate(rates, acc.spec.name, w)
                    if rate > 0:
                        soonest = min(soonest, self.now + (w.spec.budget - w.used) / rate)
                        warn = w.spec.warn_at * w.spec.budget
                        if not w.warned and not w.past_warning():
                            soonest = min(soonest, self.now + (warn - w.used) / rate)
        for run in self._active():
            if run.phase in (Phase.STARTING, Phase.RESUMING):
                soonest = min(soonest, run.phase_ends)
            elif run.phase is Phase.WORKING:
                soonest = min(
                    soonest, self.now + (self._work_target(run) - run.work_done) / run.spec.appetite
                )
        return max(soonest, self.now)

    def _active(self) -> list[SessionRun]:
        return list(self._live.values())

    def _rates(self) -> dict[tuple[str, str], float]:
        """Tokens per second drawn on each account by sessions of each model."""
        rates: dict[tuple[str, str], float] = {}
        for run in self._live.values():
            key = (run.account or "", run.spec.model)
            rates[key] = rates.get(key, 0.0) + run.rate
        return rates

    @staticmethod
    def _window_rate(rates: dict[tuple[str, str], float], account: str, w: WindowUse) -> float:
        return sum(r for (a, m), r in rates.items() if a == account and w.spec.applies_to(m))

    def _work_target(self, run: SessionRun) -> float:
        throttles = run.spec.throttles
        nxt = throttles[run.next_throttle] if run.next_throttle < len(throttles) else run.spec.work
        return min(nxt, run.spec.work)

    def _advance(self, dt: float) -> None:
        if dt <= 0:
            return
        for run in self._active():
            if run.phase is Phase.STARTING:
                run.overhead_s += dt
                continue
            tokens = run.rate * dt
            acc = self.accounts[run.account or ""]
            acc.spent += tokens
            for w in acc.windows:
                if w.spec.applies_to(run.spec.model):
                    w.used += tokens
            if run.phase is Phase.WORKING:
                run.working_s += dt
                run.work_done += tokens
            else:
                run.overhead_s += dt
                run.reread += tokens

    def _settle(self) -> None:
        """Apply everything due now, until nothing changes (one change can cause another)."""
        changed = True
        while changed:
            changed = self._resets() | self._walls() | self._phases() | self._warnings()

    def _resets(self) -> bool:
        changed = False
        for acc in self.accounts.values():
            for w in acc.windows:
                if w.resets_at is not None and w.resets_at <= self.now + EPS_S:
                    w.fills.append(w.fill())
                    w.used, w.warned = 0.0, False
                    # A calendar window begins its next instance at once; the others at the
                    # next use (now, if a session of theirs is consuming).
                    w.resets_at = w.resets_at + w.spec.length_s if w.spec.anchored else None
                    if w.resets_at is None and self._window_rate(self._rates(), acc.spec.name, w):
                        w.resets_at = self.now + w.spec.length_s
                    changed = True
        return changed

    def _open_windows(self, acc: AccountUse, model: str) -> None:
        for w in acc.windows:
            if w.resets_at is None and w.spec.applies_to(model):
                w.resets_at = self.now + w.spec.length_s

    def _warnings(self) -> bool:
        """A window passing its threshold while attempts run on the account: the runner
        reports it (a rate-limit event `allowed_warning`) without the attempt ending."""
        for name, acc in self.accounts.items():
            passed = [
                w
                for w in acc.windows
                if not w.warned and w.resets_at is not None and w.past_warning()
            ]
            for w in passed:
                w.warned = True
            if passed and any(r.account == name for r in self._live.values()):
                self.policy.reported(name, self.running_report(name))
        return False  # a report changes what the policy knows, not the world

    def _walls(self) -> bool:
        changed = False
        consuming = [r for r in self._live.values() if r.phase is not Phase.STARTING]
        for run in sorted(consuming, key=lambda r: r.spec.name):
            acc = self.accounts[run.account or ""]
            window = acc.exhausted_window(run.spec.model)
            if window is not None:
                self._wall(run, acc, window)
                changed = True
        return changed

    def _phases(self) -> bool:
        changed = False
        for run in sorted(self._active(), key=lambda r: r.name):
            if run.phase is Phase.STARTING and run.phase_ends <= self.now + EPS_S:
                acc = self.accounts[run.account or ""]
                self._open_windows(acc, run.spec.model)
                if run.attempts > 1:
                    tokens = self.costs.resume_tokens(run.work_done)
                    run.phase, run.phase_ends = Phase.RESUMING, self.now + self.costs.resume_s
                    run.resume_rate = tokens / self.costs.resume_s
                else:
                    self._working(run)
                changed = True
                window = acc.exhausted_window(run.spec.model)
                if window is not None:  # it starts on an account that is already spent
                    self._wall(run, acc, window)
            elif run.phase is Phase.RESUMING and run.phase_ends <= self.now + EPS_S:
                self._working(run)
                changed = True
            elif run.phase is Phase.WORKING:
                target = self._work_target(run)
                if run.work_done < target - 1e-6 * max(1.0, target):
                    continue
                changed = True
                if target >= run.spec.work:
                    self._end(run, self._report(run, Outcome.COMPLETED))
                else:
                    run.next_throttle += 1
                    run.throttled += 1
                    self._end(run, self._report(run, Outcome.THROTTLED, evidence="429 no reset"))
        return changed

    def _working(self, run: SessionRun) -> None:
        run.phase = Phase.WORKING
        if run.walled_at is not None:
            run.recoveries.append(self.now - run.walled_at)
            run.walled_at = None

    def _wall(self, run: SessionRun, acc: AccountUse, window: WindowUse) -> None:
        run.walls += 1
        if run.walled_at is None:
            run.walled_at = self.now
        assert window.resets_at is not None
        end = self._report(
            run,
            Outcome.WALLED,
            window=window.spec.name,
            resets_at=window.resets_at,
            evidence=_wall_evidence(window.spec),
        )
        self._end(run, end)

    def _report(
        self,
        run: SessionRun,
        outcome: Outcome,
        window: str | None = None,
        resets_at: float | None = None,
        evidence: str = "",
    ) -> AttemptEnd:
        """What the runner would write to the termination message (docs/runner.md)."""
        acc = self.accounts[run.account or ""]
        drawn = [
            w for w in acc.windows if w.resets_at is not None and w.spec.applies_to(run.spec.model)
        ]
        return AttemptEnd(
            outcome=outcome,
            evidence=evidence,
            window=window,
            resets_at=clock(resets_at) if resets_at is not None else None,
            utilization={w.spec.name: min(1.0, w.fill()) for w in drawn},
            # The rate-limit events' allowed_warning of the windows past their threshold.
            warnings={
                w.spec.name: w.spec.warn_at for w in drawn if w.past_warning() and not w.exhausted()
            },
            transcript=True,
        )

    def _end(self, run: SessionRun, end: AttemptEnd) -> None:
        self.ledger.assign((NAMESPACE, run.name), None)
        self._live.pop(run.name, None)
        if end.outcome is Outcome.COMPLETED:
            run.phase, run.ended_at = Phase.DONE, self.now
        else:
            run.phase = Phase.BLOCKED
        self.policy.ended(run, end)
        self.policy.capacity_changed()

    def _arrive(self, run: SessionRun) -> None:
        run.phase = Phase.BLOCKED
        self.policy.arrived(run)


def _wall_evidence(spec: WindowSpec) -> str:
    if spec.anchored:
        return "You're out of usage credits"
    return f"You've hit your {spec.name} limit"


def _window(spec: WindowSpec) -> WindowUse:
    if spec.started0 is None:
        return WindowUse(spec)
    return WindowUse(spec, used=spec.used0, resets_at=spec.started0 + spec.length_s)
