"""A failover writes what it must and posts one Event per session: the records of a wall that
every session of an account reports, and of a move the same pass makes, are written once."""

from __future__ import annotations

from tests.reconcilers.conftest import World, walled


async def _two_on_alice(world: World) -> None:
    world.account("alice", max_sessions=2, priority=5)
    world.account("bob", max_sessions=2)
    for name in ("s1", "s2"):
        world.session(name)
        await world.reconcile(name)
        world.run_pod(f"{name}-1")


def _account_writes(world: World, name: str) -> list[dict]:
    return [
        patch
        for verb, plural, written, patch in world.kube.writes
        if (verb, plural, written) == ("patch-status", "claudeaccounts", name)
    ]


async def test_the_second_report_of_the_same_wall_writes_nothing_new(world: World) -> None:
    await _two_on_alice(world)
    before = len(_account_writes(world, "alice"))
    for name in ("s1", "s2"):
        world.end_pod(f"{name}-1", walled(resets_in=3600), 75)
        await world.reconcile(name)
    signals = [p for p in _account_writes(world, "alice")[before:] if "lastSignal" in p]
    assert [p["lastSignal"]["session"] for p in signals] == ["s1"]
    assert [r for _, r, _ in world.events].count("Walled") == 1
    assert {world.status(n)["account"] for n in ("s1", "s2")} == {"bob"}


async def test_a_wall_that_lasts_longer_is_written_again(world: World) -> None:
    await _two_on_alice(world)
    world.end_pod("s1-1", walled(resets_in=3600), 75)
    await world.reconcile("s1")
    world.index_accounts()
    world.end_pod("s2-1", walled(resets_in=7200), 75)
    await world.reconcile("s2")
    signals = [p for p in _account_writes(world, "alice") if "lastSignal" in p]
    assert [p["lastSignal"]["session"] for p in signals] == ["s1", "s2"]
    assert [r for _, r, _ in world.events].count("Walled") == 2


async def test_a_wall_on_another_window_is_written_again(world: World) -> None:
    await _two_on_alice(world)
    world.end_pod("s1-1", walled(resets_in=3600), 75)
    await world.reconcile("s1")
    world.end_pod("s2-1", walled(window="seven_day", resets_in=3600), 75)
    await world.reconcile("s2")
    signals = [p for p in _account_writes(world, "alice") if "lastSignal" in p]
    assert [p["lastSignal"]["window"] for p in signals] == ["five_hour", "seven_day"]


async def test_a_move_made_in_the_same_pass_posts_one_event_that_says_why(world: World) -> None:
    await _two_on_alice(world)
    world.events.clear()
    world.end_pod("s1-1", walled(), 75)
    await world.reconcile("s1")
    session_events = [(r, m) for _, r, m in world.events if r != "Walled"]
    assert [r for r, _ in session_events] == ["Swapped"]
    message = session_events[0][1]
    assert "moved from alice to bob" in message and "after:" in message


async def test_a_move_that_must_wait_keeps_its_own_event(world: World) -> None:
    world.account("alice", max_sessions=1)
    world.session("s1")
    await world.reconcile("s1")
    world.run_pod("s1-1")
    world.events.clear()
    world.end_pod("s1-1", walled(), 75)
    await world.reconcile("s1")
    reasons = [r for _, r, _ in world.events]
    assert "Swapped" not in reasons
    assert reasons.count("Walled") == 2  # the account's wall, and the session's reason to move
    assert "NoHeadroom" in reasons


def test_an_account_is_refreshed_once_its_counters_stop_moving(world: World) -> None:
    rt = world.rt  # account_status_delay: 1 s
    rt.mark_account_dirty("team", "alice")
    world.clock.advance(0.5)
    rt.mark_account_dirty("team", "alice")
    world.clock.advance(0.6)
    assert rt.due_accounts() == []  # moved 0.6 s ago
    world.clock.advance(0.5)
    assert rt.due_accounts() == [("team", "alice")]
    assert rt.due_accounts() == []  # taken off the list


def test_an_account_that_keeps_moving_is_refreshed_at_least_every_five_delays(
    world: World,
) -> None:
    rt = world.rt
    for _ in range(9):
        rt.mark_account_dirty("team", "alice")
        world.clock.advance(0.5)
    assert rt.due_accounts() == []  # 4.5 s of moves, never quiet for a second
    rt.mark_account_dirty("team", "alice")
    world.clock.advance(0.5)
    assert rt.due_accounts() == [("team", "alice")]
