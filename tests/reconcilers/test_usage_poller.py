"""The live-usage poller against the in-memory Kube, a fake usage endpoint and the test's
clock: at most one read per interval per busy account, backoff on 429 (retry-after) and on
failures, one read and a condition for a credential that may not read usage (until its
Secret changes), walls that only the endpoint's own reset time ends, no token anywhere."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from tests.reconcilers.conftest import NS, START, World

from headroom.anthropic.usage import Answer, Denied, Failed, RateLimited, Report, Unauthorized
from headroom.core.durations import format_time
from headroom.reconcilers import metrics
from headroom.reconcilers.usage import UsagePoller

TOKEN = "sk-ant-oat01-usage-poller-token"
INTERVAL = timedelta(seconds=60)


class FakeEndpoint:
    """Answers from a queue (the last one repeats); records which token each read sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [report(five_hour=(25, 3600))]
        self.tokens: list[str] = []

    async def read(self, token: str) -> Answer:
        self.tokens.append(token)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def report(**windows: tuple[float, float]) -> Report:
    """Report(name=(percent, seconds until reset from START))."""
    doc: dict[str, Any] = {"five_hour": None, "seven_day": None, "extra_usage": None}
    for name, (percent, resets_in) in windows.items():
        at = format_time(START + timedelta(seconds=resets_in))
        doc[name] = {"utilization": percent, "resets_at": at}
    return Report(doc)


async def busy_account(world: World, name: str = "alice", token: str = TOKEN) -> None:
    """A verified OAuth account holding one running session."""
    world.secret(name, token=token)
    world.new_account(name)
    await world.reconcile_account(name)
    world.rt.ledger.assign((NS, f"{name}-session"), (NS, name))


async def poll(world: World, poller: UsagePoller) -> int:
    """One tick of the poller, its reads awaited; the roster then sees what they wrote."""
    tasks = poller.start_due()
    await asyncio.gather(*tasks)
    world.index_accounts()
    return len(tasks)


def make(world: World, endpoint: FakeEndpoint) -> UsagePoller:
    return UsagePoller(world.rt, endpoint, INTERVAL)


async def test_a_busy_account_is_read_once_per_interval_into_its_windows(world: World) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(report(five_hour=(25, 3600), seven_day=(60.5, 86400)))
    poller = make(world, endpoint)
    assert await poll(world, poller) == 1
    assert endpoint.tokens == [TOKEN]
    windows = {w["name"]: w for w in world.account_status("alice")["windows"]}
    assert windows["five_hour"]["utilization"] == 0.25
    assert windows["five_hour"]["resetsAt"] == format_time(START + timedelta(hours=1))
    assert windows["seven_day"] == {
        "name": "seven_day",
        "status": "allowed",
        "utilization": 0.605,
        "resetsAt": format_time(START + timedelta(days=1)),
        "observedAt": format_time(START),
    }
    world.clock.advance(59)
    assert await poll(world, poller) == 0  # not before the interval
    world.clock.advance(1)
    assert await poll(world, poller) == 1
    assert len(endpoint.tokens) == 2


async def test_a_read_that_changes_nothing_writes_nothing(world: World) -> None:
    await busy_account(world)
    poller = make(world, FakeEndpoint())
    await poll(world, poller)
    writes = len(world.kube.writes)
    world.clock.advance(60)
    assert await poll(world, poller) == 1
    assert len(world.kube.writes) == writes


async def test_traffic_follows_accounts_not_sessions(world: World) -> None:
    await busy_account(world)
    for n in range(5):
        world.rt.ledger.assign((NS, f"more-{n}"), (NS, "alice"))
    world.secret("idle", token="sk-ant-oat01-idle")
    world.new_account("idle")
    await world.reconcile_account("idle")
    endpoint = FakeEndpoint()
    assert await poll(world, make(world, endpoint)) == 1  # alice once; idle not at all
    assert endpoint.tokens == [TOKEN]


async def test_an_idle_account_is_read_while_sessions_wait(world: World) -> None:
    world.secret("idle", token="sk-ant-oat01-idle")
    world.new_account("idle")
    await world.reconcile_account("idle")
    poller = make(world, FakeEndpoint())
    assert await poll(world, poller) == 0
    world.rt.waiting["elsewhere"]["waiter"] = START  # it cannot serve that namespace
    assert await poll(world, poller) == 0
    world.rt.waiting[NS]["waiter"] = START
    assert await poll(world, poller) == 1


async def test_api_key_accounts_are_never_read(world: World) -> None:
    world.secret("keyed", apiKey="sk-ant-api03-key")
    world.new_account("keyed")
    body = world.kube.obj("claudeaccounts", "keyed")
    assert body is not None
    body["spec"]["credentials"]["type"] = "APIKey"
    await world.reconcile_account("keyed")
    world.rt.ledger.assign((NS, "s"), (NS, "keyed"))
    endpoint = FakeEndpoint()
    assert await poll(world, make(world, endpoint)) == 0
    assert endpoint.tokens == []


async def test_a_429_waits_for_retry_after(world: World) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(RateLimited(retry_after=300), report(five_hour=(10, 3600)))
    poller = make(world, endpoint)
    await poll(world, poller)
    world.clock.advance(299)
    assert await poll(world, poller) == 0
    world.clock.advance(1)
    assert await poll(world, poller) == 1
    assert len(endpoint.tokens) == 2


async def test_429s_without_retry_after_back_off_exponentially_up_to_an_hour(
    world: World,
) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(RateLimited(retry_after=None))
    poller = make(world, endpoint)
    pauses = []
    for _ in range(8):
        await poll(world, poller)
        pause = poller.states[(NS, "alice")].next_at - world.clock.now
        pauses.append(pause.total_seconds())
        world.clock.now += pause
    assert pauses == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert len(endpoint.tokens) == 8  # one read per pause, never more


async def test_failures_back_off_and_a_success_ends_the_backoff(world: World) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(Failed("timeout"), Failed("http_500"), report(five_hour=(5, 60)))
    poller = make(world, endpoint)
    await poll(world, poller)
    world.clock.advance(120)
    await poll(world, poller)
    assert poller.states[(NS, "alice")].next_at - world.clock.now == timedelta(seconds=240)
    world.clock.advance(240)
    await poll(world, poller)
    assert poller.states[(NS, "alice")].next_at - world.clock.now == INTERVAL


async def test_a_403_sets_the_condition_and_stops_reading_until_the_secret_changes(
    world: World,
) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(Denied("permission_error"))
    poller = make(world, endpoint)
    await poll(world, poller)
    status = world.account_status("alice")
    assert status["usageDeniedHash"] == status["credentialsHash"]
    assert (NS, "alice") in world.rt.dirty_accounts
    await world.reconcile_account("alice")  # what the dirty-account flush runs
    condition = world.account_condition("alice", "UsageReadable")
    assert (condition["status"], condition["reason"]) == ("False", "UsageNotPermitted")
    assert "user:profile" in condition["message"]
    assert ("Warning", "UsageNotPermitted") in [(k, r) for k, r, _ in world.events]
    for _ in range(30):  # half an hour of ticks: no retry storm, not one more read
        world.clock.advance(60)
        await poll(world, poller)
    assert len(endpoint.tokens) == 1
    assert world.account_status("alice")["phase"] == "Available"  # inference is unaffected

    world.secret("alice", token="sk-ant-oat01-a-login-token")  # the Secret is replaced
    await world.reconcile_account("alice")
    condition = world.account_condition("alice", "UsageReadable")
    assert (condition["status"], condition["reason"]) == ("True", "CredentialChanged")
    endpoint.answers = [report(five_hour=(1, 60))]
    assert await poll(world, poller) == 1
    assert endpoint.tokens[-1] == "sk-ant-oat01-a-login-token"


async def test_a_401_stops_reading_without_a_condition(world: World) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint(Unauthorized())
    poller = make(world, endpoint)
    await poll(world, poller)
    world.clock.advance(3600)
    assert await poll(world, poller) == 0
    await world.reconcile_account("alice")
    assert world.account_condition("alice", "UsageReadable") == {}


async def test_a_wall_with_a_later_reset_stays_until_the_endpoint_says_it_reset(
    world: World,
) -> None:
    await busy_account(world)
    wall = START + timedelta(hours=2)
    status = world.account_status("alice")
    status["walledUntil"] = format_time(wall)
    status["lastSignal"] = {"type": "walled", "window": "five_hour"}
    status["windows"] = [{"name": "five_hour", "status": "rejected", "utilization": 1.0,
                          "resetsAt": format_time(wall)}]  # fmt: skip
    world.index_accounts()
    endpoint = FakeEndpoint(report(five_hour=(40, 7200)))  # same period: the wall holds
    poller = make(world, endpoint)
    await poll(world, poller)
    status = world.account_status("alice")
    assert status["walledUntil"] == format_time(wall)
    assert status["windows"][0]["status"] == "rejected"
    assert status["windows"][0]["utilization"] == 1.0
    gauge = metrics.window_utilization.labels(NS, "alice", "five_hour")
    assert gauge._value.get() == 1.0  # the gauge says what status says

    endpoint.answers = [report(five_hour=(3, 5 * 3600))]  # a new period began: it reset
    world.clock.advance(60)
    await poll(world, poller)
    status = world.account_status("alice")
    assert "walledUntil" not in status
    assert status["windows"][0]["utilization"] == 0.03
    assert status["windows"][0]["status"] == "allowed"
    assert "WallReset" in [r for _, r, _ in world.events]
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"


async def test_a_credit_wall_is_not_the_endpoints_to_end(world: World) -> None:
    await busy_account(world)
    status = world.account_status("alice")
    status["walledUntil"] = format_time(START + timedelta(hours=1))
    status["walledHash"] = status["credentialsHash"]
    status["lastSignal"] = {"type": "walled", "window": "credits"}
    world.index_accounts()
    await poll(world, make(world, FakeEndpoint(report(five_hour=(1, 9 * 3600)))))
    assert world.account_status("alice")["walledUntil"] == format_time(START + timedelta(hours=1))


async def test_the_token_appears_in_no_status_event_or_log(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await busy_account(world)
    answers = (Denied("permission_error"),)
    for answer in (report(five_hour=(5, 60)), RateLimited(None), Failed("timeout"), *answers):
        poller = make(world, FakeEndpoint(answer))
        await poll(world, poller)
        world.clock.advance(3600)
    written = repr(world.kube.writes) + repr(world.events) + caplog.text
    assert TOKEN not in written


async def test_a_standby_replica_reads_nothing(world: World) -> None:
    await busy_account(world)
    endpoint = FakeEndpoint()
    poller = UsagePoller(world.rt, endpoint, timedelta(seconds=1))
    world.rt.active.clear()
    task = asyncio.create_task(poller.run())
    try:
        await asyncio.sleep(0.7)
        assert endpoint.tokens == []
        world.rt.active.set()
        for _ in range(50):
            await asyncio.sleep(0.02)
            if endpoint.tokens:
                break
        assert endpoint.tokens == [TOKEN]
    finally:
        task.cancel()


async def test_reads_are_bounded_and_a_hung_one_holds_back_nobody_else(world: World) -> None:
    """Four reads at a time; one that never answers holds one slot, not the poller."""
    hung = asyncio.Event()

    class Slow(FakeEndpoint):
        async def read(self, token: str) -> Answer:
            if token.endswith("-0"):
                await hung.wait()
            return await super().read(token)

    for n in range(6):
        await busy_account(world, f"acct-{n}", token=f"sk-ant-oat01-t-{n}")
    endpoint = Slow()
    poller = make(world, endpoint)
    tasks = poller.start_due()
    assert len(tasks) == 6
    await asyncio.sleep(0.05)
    assert len(endpoint.tokens) == 5  # the other five answered
    assert (NS, "acct-0") in poller.in_flight
    assert poller.start_due() == []  # no second read of the hung one
    hung.set()
    await asyncio.gather(*tasks)


async def test_a_secret_that_changed_under_the_account_is_not_read_until_reconciled(
    world: World,
) -> None:
    await busy_account(world)
    world.secret("alice", token="sk-ant-oat01-rotated")  # the account still has the old hash
    world.rt.secrets.seen(NS, "alice", "changed")  # as the Secret watch reports it
    endpoint = FakeEndpoint()
    poller = make(world, endpoint)
    assert await poll(world, poller) == 1
    assert await poll(world, poller) == 0  # an interval, not a tick, until the next try
    assert endpoint.tokens == []
    await world.reconcile_account("alice")
    world.clock.advance(60)
    assert await poll(world, poller) == 1
    assert endpoint.tokens == ["sk-ant-oat01-rotated"]
