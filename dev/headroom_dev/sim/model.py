"""The simulated world: accounts with usage windows, sessions with an appetite, and the costs
of starting and resuming an attempt. Plain values; the engine owns everything that changes.

Units: seconds of simulated time from the start of the trace, and tokens. An appetite is in
tokens per second while the session works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from headroom.core.accounts import CredentialType
from headroom.core.models import draws_on

# Simulated time 0. A Monday, so "a few days" reads like a working week.
EPOCH = datetime(2026, 1, 5, 0, 0, 0, tzinfo=UTC)
NAMESPACE = "sim"
HOUR = 3600.0
DAY = 24 * HOUR
# The stand-in's early-warning threshold: `allowed_warning` past 80 % utilization.
WARN_AT = 0.8
# Every simulated account holds a subscription token (CLAUDE_CODE_OAUTH_TOKEN). Which windows a
# session's model draws on is headroom.core.models' to say, for the world as for placement.
CREDENTIAL = CredentialType.OAUTH_TOKEN


def clock(seconds: float) -> datetime:
    """Simulated seconds as the aware datetime the core functions take."""
    return EPOCH + timedelta(seconds=seconds)


def seconds(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds()


@dataclass(frozen=True)
class WindowSpec:
    """One usage window: `budget` tokens per `length_s`, counted from the first use after the
    previous window reset (how Claude's five-hour window behaves). `used0` and `started0`
    describe a window already under way when the trace starts (a weekly window mid-week)."""

    name: str
    length_s: float
    budget: float
    used0: float = 0.0
    started0: float | None = None  # seconds (<= 0) when the window under way began
    # Resets on a calendar (a monthly usage credit), not at first use: the next instance
    # begins the moment this one ends.
    anchored: bool = False
    # The runner reports `allowed_warning` once an instance's utilization passes this.
    warn_at: float = WARN_AT

    def applies_to(self, model: str) -> bool:
        """Whether a session of `model` draws on this window (`seven_day_opus`: opus only)."""
        return _draws_on(self.name, model)


@cache  # the engine asks at every step; the answer depends on the two names only
def _draws_on(window: str, model: str) -> bool:
    return draws_on(window, model, CREDENTIAL)


@dataclass(frozen=True)
class AccountSpec:
    name: str
    windows: tuple[WindowSpec, ...]
    max_sessions: int
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    priority: int = 0


@dataclass(frozen=True)
class SessionSpec:
    """A session's demand: `work` tokens of useful work at `appetite` tokens/s. `throttles`
    are points in the session's own work (tokens done) where the API answers a bare 429: the
    attempt ends `throttled` (no reset time), whatever the policy. Defining them in work, not
    wall-clock time, makes the trace identical under every policy."""

    name: str
    arrival_s: float
    work: float
    appetite: float
    throttles: tuple[float, ...] = ()
    selector: Mapping[str, Any] | None = field(default=None, hash=False)
    model: str = "sonnet"

    @property
    def duration_s(self) -> float:
        """How long the session works when nothing stops it."""
        return self.work / self.appetite


@dataclass(frozen=True)
class Costs:
    """What every attempt costs before it does useful work (the same for every policy)."""

    start_s: float = 20.0  # pod created -> the CLI sends its first request
    resume_s: float = 30.0  # the resumed CLI re-reads its conversation
    context_base: float = 20_000.0  # tokens a resume re-reads at least (system prompt, tools)
    context_share: float = 0.05  # ... plus this share of the work done so far
    context_cap: float = 160_000.0  # ... up to the context window (compaction keeps it there)

    def resume_tokens(self, work_done: float) -> float:
        return min(self.context_cap, self.context_base + self.context_share * work_done)


@dataclass(frozen=True)
class Scenario:
    accounts: tuple[AccountSpec, ...]
    sessions: tuple[SessionSpec, ...]
    horizon_s: float
    costs: Costs = Costs()
    seed: int | None = None
