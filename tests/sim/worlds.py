"""Small hand-built worlds for the simulator's tests (helpers, not fixtures)."""

from __future__ import annotations

from headroom_dev.sim.model import HOUR, AccountSpec, Costs, Scenario, SessionSpec, WindowSpec

# No start or resume cost: the hand-checked answers stay simple arithmetic.
FREE = Costs(start_s=0.0, resume_s=1.0, context_base=0.0, context_share=0.0, context_cap=0.0)


def account(
    name: str,
    budget: float,
    slots: int = 1,
    length_s: float = 5 * HOUR,
    labels: dict[str, str] | None = None,
    priority: int = 0,
) -> AccountSpec:
    return AccountSpec(
        name,
        (WindowSpec("five_hour", length_s, budget),),
        max_sessions=slots,
        labels=labels or {},
        priority=priority,
    )


def session(name: str, at: float, work: float, appetite: float = 1.0, **kw: object) -> SessionSpec:
    return SessionSpec(name, at, work, appetite, **kw)  # type: ignore[arg-type]


def world(
    accounts: list[AccountSpec],
    sessions: list[SessionSpec],
    horizon_s: float = 24 * HOUR,
    costs: Costs = FREE,
) -> Scenario:
    return Scenario(tuple(accounts), tuple(sessions), horizon_s, costs)
