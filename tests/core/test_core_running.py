"""`core.running.while_running`: the decision for an attempt whose pod still runs. Every
combination of timeout (none, time left, reached), drill (none, under way, over) and a pod
already being deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headroom.core.accounts import Account
from headroom.core.reasons import EvictionReason
from headroom.core.running import WhileRunning, drilling, while_running
from headroom.core.task import Limits, Totals

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TEN_MINUTES = Limits(timeout=timedelta(minutes=10))
ALICE = Account("team", "alice")
DRILLED = Account("team", "alice", drill_until=NOW + timedelta(minutes=2))
DRILL_OVER = Account("team", "alice", drill_until=NOW)
STARTED_2M_AGO = NOW - timedelta(minutes=2)

ROWS: list[tuple[str, Limits, Totals, datetime | None, Account | None, bool, WhileRunning]] = [
    ("no-limit-no-drill", Limits(), Totals(), STARTED_2M_AGO, ALICE, False, WhileRunning()),
    ("unknown-account", Limits(), Totals(), STARTED_2M_AGO, None, False, WhileRunning()),
    (
        "time-left-rechecks-when-it-runs-out",
        TEN_MINUTES,
        Totals(),
        STARTED_2M_AGO,
        ALICE,
        False,
        WhileRunning(recheck_at=NOW + timedelta(minutes=8)),
    ),
    (
        "earlier-attempts-count-too",
        TEN_MINUTES,
        Totals(seconds=300),
        STARTED_2M_AGO,
        ALICE,
        False,
        WhileRunning(recheck_at=NOW + timedelta(minutes=3)),
    ),
    (
        "not-started-yet-counts-as-zero",
        TEN_MINUTES,
        Totals(),
        None,
        ALICE,
        False,
        WhileRunning(recheck_at=NOW + timedelta(minutes=10)),
    ),
    (
        "a-timeout-of-milliseconds-not-started-rechecks-no-sooner-than-a-second",
        Limits(timeout=timedelta(milliseconds=1)),
        Totals(),
        None,
        ALICE,
        False,
        WhileRunning(recheck_at=NOW + timedelta(seconds=1)),
    ),
    (
        "under-a-second-left-rechecks-in-a-second",
        TEN_MINUTES,
        Totals(seconds=479.5),
        STARTED_2M_AGO,
        ALICE,
        False,
        WhileRunning(recheck_at=NOW + timedelta(seconds=1)),
    ),
    (
        "timeout-reached-exactly",
        TEN_MINUTES,
        Totals(seconds=480),
        STARTED_2M_AGO,
        ALICE,
        False,
        WhileRunning(stop=EvictionReason.TIMED_OUT),
    ),
    (
        "timeout-spent-by-earlier-attempts",
        TEN_MINUTES,
        Totals(seconds=900),
        None,
        ALICE,
        False,
        WhileRunning(stop=EvictionReason.TIMED_OUT),
    ),
    (
        "drill-stops-the-pod",
        Limits(),
        Totals(),
        STARTED_2M_AGO,
        DRILLED,
        False,
        WhileRunning(stop=EvictionReason.DRILL),
    ),
    (
        "drill-keeps-the-timeout-recheck",
        TEN_MINUTES,
        Totals(),
        STARTED_2M_AGO,
        DRILLED,
        False,
        WhileRunning(stop=EvictionReason.DRILL, recheck_at=NOW + timedelta(minutes=8)),
    ),
    (
        "timeout-wins-over-a-drill",
        TEN_MINUTES,
        Totals(seconds=600),
        STARTED_2M_AGO,
        DRILLED,
        False,
        WhileRunning(stop=EvictionReason.TIMED_OUT),
    ),
    ("drill-over", Limits(), Totals(), STARTED_2M_AGO, DRILL_OVER, False, WhileRunning()),
    ("deleting-drilled", Limits(), Totals(), STARTED_2M_AGO, DRILLED, True, WhileRunning()),
    ("deleting-timed-out", TEN_MINUTES, Totals(seconds=900), None, ALICE, True, WhileRunning()),
    ("deleting-time-left", TEN_MINUTES, Totals(), STARTED_2M_AGO, ALICE, True, WhileRunning()),
]


@pytest.mark.parametrize(
    ("limits", "totals", "started", "account", "stopping", "want"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_while_running(
    limits: Limits,
    totals: Totals,
    started: datetime | None,
    account: Account | None,
    stopping: bool,
    want: WhileRunning,
) -> None:
    assert while_running(limits, totals, started, account, stopping=stopping, now=NOW) == want


def test_a_drill_lasts_until_its_end_exclusive() -> None:
    assert drilling(DRILLED, NOW)
    assert not drilling(DRILLED, NOW + timedelta(minutes=2))
    assert not drilling(ALICE, NOW)
    assert not drilling(None, NOW)


def test_eviction_reasons_are_the_status_values() -> None:
    assert [r.value for r in EvictionReason] == ["TimedOut", "Drill", "NodeLost"]
