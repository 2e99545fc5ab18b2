"""Synthetic demand: a seeded pool of accounts and a few days of sessions arriving.

Every number here is an assumption, stated in docs/simulation.md. Anthropic does not publish
window budgets in tokens, so budgets are set relative to session appetite: a big account's
five-hour window holds about three sessions working flat out for five hours, and its weekly
window about eight full five-hour windows, so heavy use meets the weekly wall within days.
"""

from __future__ import annotations

import math
import random

from headroom.core.models import MODEL_WINDOWS
from headroom_dev.sim.model import DAY, HOUR, AccountSpec, Costs, Scenario, SessionSpec, WindowSpec

MINUTE = 60.0
APPETITE_MEDIAN = 8_000.0 / MINUTE  # tokens per second while working
FIVE_HOUR = 5 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
OPUS_SHARE = 0.3  # of sessions ask for opus, the rest for sonnet
# Per-model weekly limits (of the families in core.models.MODEL_WINDOWS), as shares of the
# account's weekly budget.
MODEL_WEEKLY = {"opus": 0.4, "sonnet": 0.75}
# The monthly usage credit headless use draws on, in five-hour budgets of a max20 account
# (Max 20x $200, Max 5x $100: half of it for a max5 account).
CREDIT_MAX20 = 24.0


def tiers() -> list[tuple[str, int, float, int]]:
    """(tier, how many, five-hour budget in tokens, maxSessions)."""
    big = 3 * APPETITE_MEDIAN * FIVE_HOUR  # three median sessions for five hours
    return [("max20", 3, big, 6), ("max5", 5, big / 4, 3)]


def credit(tier: str) -> float:
    big = tiers()[0][2]
    return CREDIT_MAX20 * big * (1.0 if tier == "max20" else 0.5)


def accounts(rng: random.Random) -> tuple[AccountSpec, ...]:
    out: list[AccountSpec] = []
    for tier, count, budget, slots in tiers():
        for i in range(count):
            weekly = 8 * budget
            # The trace starts mid-week for each account: its weekly window began up to six
            # days ago and is partly used, in proportion to how long ago it began.
            began = -rng.uniform(0.0, 6.0) * DAY
            share = rng.uniform(0.2, 0.6) * (-began / WEEK)
            per_model = tuple(
                WindowSpec(
                    MODEL_WINDOWS[model],
                    WEEK,
                    weekly * part,
                    used0=weekly * part * share * rng.uniform(0.5, 1.2),
                    started0=began,
                )
                for model, part in MODEL_WEEKLY.items()
            )
            # The monthly credit refreshes on the account's billing day, up to a month away,
            # and has been drawn on in proportion to the days since the last refresh.
            refreshed = -rng.uniform(0.0, 30.0) * DAY
            monthly = credit(tier)
            spent = min(0.97, rng.uniform(0.6, 1.1) * -refreshed / MONTH) * monthly
            out.append(
                AccountSpec(
                    name=f"{tier}-{i + 1}",
                    windows=(
                        WindowSpec("five_hour", FIVE_HOUR, budget),
                        WindowSpec("seven_day", WEEK, weekly, used0=weekly * share, started0=began),
                        *per_model,
                        WindowSpec(
                            "credits",
                            MONTH,
                            monthly,
                            used0=spent,
                            started0=refreshed,
                            anchored=True,
                        ),
                    ),
                    max_sessions=slots,
                    labels={"tier": tier},
                )
            )
    return tuple(out)


def arrival_rate(t: float, per_day: float) -> float:
    """Sessions per second at time t: a working-day bump (peak 14:00) over a night floor."""
    hour = (t % DAY) / HOUR
    shape = 0.25 + 1.75 * math.exp(-(((hour - 14.0) / 4.0) ** 2))
    mean_shape = 0.25 + 1.75 * 4.0 * math.sqrt(math.pi) / 24.0  # the bump's mean over a day
    return per_day / DAY * shape / mean_shape


def sessions(
    rng: random.Random, horizon_s: float, per_day: float, throttles_per_hour: float
) -> tuple[SessionSpec, ...]:
    out: list[SessionSpec] = []
    peak = arrival_rate(14 * HOUR, per_day)
    t = 0.0
    while True:  # a non-homogeneous Poisson process, by thinning
        t += rng.expovariate(peak)
        if t >= horizon_s:
            break
        if rng.random() > arrival_rate(t, per_day) / peak:
            continue
        appetite = APPETITE_MEDIAN * rng.lognormvariate(0.0, 0.5)
        minutes = min(6 * 60.0, max(5.0, 50.0 * rng.lognormvariate(0.0, 0.8)))
        work = appetite * minutes * MINUTE
        throttles: list[float] = []
        done = 0.0
        while throttles_per_hour > 0:  # bare 429s, spaced in the session's own working time
            done += appetite * rng.expovariate(throttles_per_hour / HOUR)
            if done >= work:
                break
            throttles.append(done)
        model = "opus" if rng.random() < OPUS_SHARE else "sonnet"
        out.append(
            SessionSpec(f"s{len(out) + 1:04d}", t, work, appetite, tuple(throttles), model=model)
        )
    return tuple(out)


def scenario(
    seed: int,
    days: float = 3.0,
    per_day: float = 150.0,
    throttles_per_hour: float = 0.1,
    costs: Costs | None = None,
) -> Scenario:
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not a secret
    horizon = days * DAY
    pool = accounts(rng)
    demand = sessions(rng, horizon, per_day, throttles_per_hour)
    return Scenario(pool, demand, horizon, costs or Costs(), seed)
