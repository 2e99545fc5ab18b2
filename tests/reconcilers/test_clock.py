"""Every wall-clock read of the operator goes through the Runtime's clock: the timers of
main.py, the peering watch and the metrics computed at scrape time follow the clock a test
sets, not the machine's."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from tests.reconcilers.conftest import World

from headroom.controllers import main, peering
from headroom.core.accounts import Account
from headroom.kube.client import Kube
from headroom.reconcilers import metrics

OPERATOR = Path(main.__file__).resolve().parents[1]
WALL_CLOCK = re.compile(r"datetime\.now\(|datetime\.utcnow\(|time\.time\(|time\.monotonic\(")
# The core takes `now` as an argument; the runner runs in the agent pod and the kubectl
# plugin in the user's shell, neither with a Runtime (the plugin's views take `now` too).
EXEMPT = {OPERATOR / "reconcilers" / "clock.py"}
EXEMPT_DIRS = (OPERATOR / "runner", OPERATOR / "plugin")
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # no machine clock reads this while the tests run


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    readers = [
        str(path.relative_to(OPERATOR))
        for path in OPERATOR.rglob("*.py")
        if path not in EXEMPT
        and not any(d in path.parents for d in EXEMPT_DIRS)
        and WALL_CLOCK.search(path.read_text())
    ]
    assert readers == []


def test_the_available_accounts_gauge_reads_the_runtime_clock(world: World) -> None:
    walled = Account("team", "alice", credentials_hash="sha256:1", walled_until=FAR)
    world.clock.now = FAR - timedelta(hours=1)
    assert not main._is_available(world.rt, walled)
    world.clock.now = FAR + timedelta(hours=1)
    assert main._is_available(world.rt, walled)


def test_reset_seconds_count_from_the_clock_the_collector_is_given() -> None:
    resets = metrics._WindowResets(clock=lambda: FAR)
    resets.set("ns", "alice", "five_hour", (FAR + timedelta(seconds=90)).timestamp())
    (left, _at) = resets.collect()
    assert [s.value for s in left.samples] == [90.0]


class PeeringKube:
    """The peering object as GET returns it; the other peer's keep-alive is a fixed time."""

    def __init__(self, seen: datetime) -> None:
        lastseen = seen.strftime("%Y-%m-%dT%H:%M:%S.%f")
        self.status = {
            "me": {"priority": 1, "lastseen": lastseen, "lifetime": 60},
            "other": {"priority": 5, "lastseen": lastseen, "lifetime": 60},
        }

    async def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        return {"status": self.status}


@pytest.mark.parametrize(("now", "active"), [(FAR, False), (FAR + timedelta(minutes=5), True)])
async def test_leadership_ages_the_other_peer_by_the_injected_clock(
    now: datetime, active: bool
) -> None:
    """The higher-priority peer was last seen at FAR: by the clock at FAR it is alive (stand
    by); five minutes later its 60s lifetime is over (act)."""
    gate = asyncio.Event()
    if not active:
        gate.set()  # so that standing by is a change the watch makes
    watch = asyncio.create_task(
        peering.watch_leadership(
            cast(Kube, PeeringKube(FAR)), "ha", [None], "me", 1, gate, 60.0, clock=lambda: now
        )
    )
    await asyncio.sleep(0.05)
    watch.cancel()
    assert gate.is_set() is active
