"""The ClaudeAccount reconciler at chosen times, against an in-memory Kube: credentials and
the runtime Secret, walls and 401s recorded by sessions, drills. Each test asserts the writes
a pass makes, in order, and what status then says."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from tests.reconcilers.conftest import NS, START, World, failed, walled

from headroom.contract.termination import Outcome, TerminationMessage

TOKEN = "sk-ant-oat01-alice-0000"
RUNTIME = "headroom-account-alice"


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(world: World, name: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in world.account_status(name)["conditions"]}


async def available(world: World, name: str, token: str = TOKEN) -> None:
    world.secret(name, token=token)
    world.new_account(name)
    await world.reconcile_account(name)
    assert world.account_status(name)["phase"] == "Available"


async def test_a_valid_secret_makes_the_account_available(world: World) -> None:
    world.secret("alice", token=TOKEN)
    world.new_account("alice")
    await world.reconcile_account("alice")
    assert world.kube.verbs() == [
        ("replace-or-create", "secrets", RUNTIME),  # before status names it
        ("patch-status", "claudeaccounts", "alice"),
    ]
    runtime = world.kube.obj("secrets", RUNTIME)
    assert runtime is not None
    assert runtime["data"] == {"token": base64.b64encode(TOKEN.encode()).decode()}
    (owner,) = runtime["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ClaudeAccount", "alice", "uid-alice")
    status = world.account_status("alice")
    assert status["phase"] == "Available"
    assert status["credentialsHash"] == digest(TOKEN)
    assert (status["runtimeSecretName"], status["activeSessions"]) == (RUNTIME, 0)
    assert status["observedGeneration"] == 1
    assert conditions(world, "alice") == {
        "CredentialsValid": ("True", "Valid"),
        "DuplicateCredential": ("False", "Unique"),
        "Ready": ("True", "Available"),
        "Walled": ("False", "NotWalled"),
        "ModelLimited": ("False", "NoModelLimit"),
    }
    assert world.events == [("Normal", "Available", "credentials verified; ready for sessions")]
    assert world.rt.secret_refs[(NS, "alice")] == {(NS, "alice")}  # a Secret change re-checks it


async def test_a_pass_with_nothing_new_writes_nothing(world: World) -> None:
    await available(world, "alice")
    world.kube.writes.clear()
    world.clock.advance(3600)
    await world.reconcile_account("alice")
    assert world.kube.writes == []


async def test_a_deleted_account_is_forgotten(world: World) -> None:
    await available(world, "alice")
    world.rt.roster.note(NS, "alice", walled_until=START + timedelta(hours=1))
    world.kube.objects.pop(("claudeaccounts", "alice"))
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.writes == []
    assert world.rt.roster.signals(NS, "alice") is None


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (None, "SecretNotFound", "Secret 'alice' was not found in namespace team"),
        ({"apiKey": "x"}, "KeyNotFound", "has no key 'token' (keys present: apiKey)"),
        ({"token": "  \n"}, "EmptyCredential", "key 'token' of Secret 'alice' is empty"),
    ],
)
async def test_unusable_credentials_name_the_reason(
    world: World, data: dict[str, str] | None, reason: str, says: str
) -> None:
    if data is not None:
        world.secret("alice", **data)
    world.new_account("alice")
    await world.reconcile_account("alice")
    assert world.kube.verbs() == [("patch-status", "claudeaccounts", "alice")]  # no runtime Secret
    status = world.account_status("alice")
    assert status["phase"] == "Unknown" and "credentialsHash" not in status
    cond = world.account_condition("alice", "CredentialsValid")
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert says in cond["message"]
    assert TOKEN not in str(world.kube.writes)
    ready = world.account_condition("alice", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsInvalid")
    assert world.events[-1][:2] == ("Warning", "Unknown")


async def test_a_secret_that_is_not_base64_is_unreadable(world: World) -> None:
    world.kube.put("secrets", {"metadata": {"name": "alice"}, "data": {"token": "%%%"}})
    world.new_account("alice")
    await world.reconcile_account("alice")
    assert world.account_condition("alice", "CredentialsValid")["reason"] == "Unreadable"


async def test_a_key_removed_later_clears_the_hash(world: World) -> None:
    await available(world, "alice")
    world.secret("alice", other="x")
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.verbs() == [("patch-status", "claudeaccounts", "alice")]
    patch = world.kube.writes[0][3]
    assert patch["credentialsHash"] is None and patch["phase"] == "Unknown"
    assert world.account_condition("alice", "CredentialsValid")["reason"] == "KeyNotFound"


async def test_a_secret_that_appears_later_makes_the_account_available(world: World) -> None:
    world.new_account("alice")
    await world.reconcile_account("alice")
    world.secret("alice", token=TOKEN)
    world.kube.writes.clear()
    await world.reconcile_account("alice")  # what the Secret's watch event runs
    assert world.kube.verbs() == [
        ("replace-or-create", "secrets", RUNTIME),
        ("patch-status", "claudeaccounts", "alice"),
    ]
    assert world.account_status("alice")["phase"] == "Available"
    assert world.events[-1][:2] == ("Normal", "Available")


async def test_a_wall_holds_until_the_reset_then_the_account_is_available(world: World) -> None:
    await available(world, "alice")
    world.session("s1")
    await world.reconcile("s1")
    world.end_pod("s1-1", walled(resets_in=3600), code=75)
    await world.reconcile("s1")  # records the wall on alice; s1 waits (no other account)
    assert world.status("s1")["phase"] == "Waiting"
    assert world.account_status("alice")["walledUntil"] == at(3600)
    world.kube.writes.clear()

    await world.reconcile_account("alice")
    (write,) = world.kube.writes
    assert write[:3] == ("patch-status", "claudeaccounts", "alice")
    assert write[3]["phase"] == "Walled"
    walled_cond = world.account_condition("alice", "Walled")
    assert (walled_cond["status"], walled_cond["reason"]) == ("True", "UsageLimitReached")
    assert walled_cond["message"] == f"usage limit reached (five_hour); resets at {at(3600)}"
    assert world.account_condition("alice", "Ready")["status"] == "False"
    assert world.events[-1][:2] == ("Normal", "Walled")
    assert world.rt.wakeups.pending(("account", NS, "alice")) == START + timedelta(hours=1)

    world.clock.advance(3599)
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.writes == []  # still walled: nothing changed

    world.clock.advance(2)
    # The session's own wake-up at the reset is left out: the account's return wakes it.
    world.rt.wakeups.cancel(("session", NS, "s1"))
    await world.reconcile_account("alice")
    (write,) = world.kube.writes
    assert write[3]["phase"] == "Available"
    assert conditions(world, "alice")["Walled"] == ("False", "NotWalled")
    assert world.events[-1][:2] == ("Normal", "Available")
    assert world.rt.wakeups.pending(("session", NS, "s1")) == world.clock.now
    await world.reconcile("s1")
    assert (world.status("s1")["account"], world.status("s1")["attempt"]) == ("alice", 2)


async def test_a_401_blocks_the_account_until_the_secret_changes(world: World) -> None:
    await available(world, "alice")
    world.session("s1")
    await world.reconcile("s1")
    rejected = TerminationMessage(
        Outcome.AUTH_FAILED, evidence="401 invalid x-api-key", transcript=False
    )
    world.end_pod("s1-1", rejected, code=77)
    await world.reconcile("s1")
    assert world.account_status("alice")["authFailedHash"] == digest(TOKEN)
    world.kube.writes.clear()

    await world.reconcile_account("alice")
    assert world.kube.verbs() == [("patch-status", "claudeaccounts", "alice")]
    assert world.account_status("alice")["phase"] == "AuthFailed"
    assert conditions(world, "alice")["CredentialsValid"] == ("False", "AuthenticationFailed")
    assert world.events[-1][:2] == ("Warning", "AuthFailed")
    assert world.rt.wakeups.pending(("account", NS, "alice")) is None  # time does not heal it

    world.clock.advance(7 * 24 * 3600)
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.writes == []

    world.secret("alice", token="sk-ant-oat01-alice-rotated")
    await world.reconcile_account("alice")
    assert world.kube.verbs() == [
        ("replace-or-create", "secrets", RUNTIME),
        ("patch-status", "claudeaccounts", "alice"),
    ]
    patch = world.kube.writes[-1][3]
    assert patch["credentialsHash"] == digest("sk-ant-oat01-alice-rotated")
    assert patch["phase"] == "Available"
    assert conditions(world, "alice")["CredentialsValid"] == ("True", "Valid")
    assert world.events[-1][:2] == ("Normal", "Available")


async def test_a_drill_on_an_idle_account_starts_completes_and_ends(world: World) -> None:
    await available(world, "alice")
    body = world.kube.obj("claudeaccounts", "alice")
    assert body is not None
    body["metadata"]["annotations"] = {"headroom.dev/drill": "drill-1"}
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    (write,) = world.kube.writes
    assert write[3]["drill"] == {
        "value": "drill-1",
        "startedAt": at(0),
        "until": at(120),
        "sessionsToMove": 0,
        "sessionsMoved": 0,
    }
    assert write[3]["phase"] == "Walled"
    assert world.account_condition("alice", "Walled")["reason"] == "Drill"
    assert world.events[-2][1:] == (
        "DrillStarted",
        f"drill 'drill-1': treating the account as walled until {at(120)}; moving 0 session(s)",
    )

    world.kube.writes.clear()
    await world.reconcile_account("alice")  # what its own status write triggers
    (write,) = world.kube.writes
    assert write[3]["drill"]["completedAt"] == at(0)
    assert write[3]["drill"]["moveSeconds"] == 0
    assert world.events[-1][1] == "DrillCompleted"

    world.kube.writes.clear()
    await world.reconcile_account("alice")
    assert world.kube.writes == []  # the same annotation never starts a second drill

    world.clock.advance(121)
    await world.reconcile_account("alice")
    assert world.account_status("alice")["phase"] == "Available"
    assert world.account_status("alice")["drill"]["value"] == "drill-1"


@pytest.mark.parametrize(
    ("duration", "seconds", "problem"),
    [
        ("10m", 600, ""),
        ("1h30m", 5400, ""),
        ("ten minutes", 120, "'ten minutes' is not a duration like 90s, 5m or 1h30m"),
        ("48h", 120, "'48h' is not between 1s and 24h"),
    ],
)
async def test_a_drill_lasts_as_long_as_its_duration_annotation_says(
    world: World, duration: str, seconds: int, problem: str
) -> None:
    await available(world, "alice")
    body = world.kube.obj("claudeaccounts", "alice")
    assert body is not None
    body["metadata"]["annotations"] = {
        "headroom.dev/drill": "drill-1",
        "headroom.dev/drill-duration": duration,
    }
    world.kube.writes.clear()
    await world.reconcile_account("alice")
    (write,) = world.kube.writes
    assert write[3]["drill"]["until"] == at(seconds)
    reason, message = world.events[-2][1:]
    assert reason == "DrillStarted" and f"walled until {at(seconds)}" in message
    if problem:
        assert message.endswith(f"(headroom.dev/drill-duration ignored: {problem})")
    else:
        assert "ignored" not in message


async def test_a_drill_moves_the_running_session_and_counts_it(world: World) -> None:
    await available(world, "alice")
    await available(world, "bob", token="sk-ant-oat01-bob-0000")
    world.session("s1")
    await world.reconcile("s1")
    assert world.status("s1")["account"] == "alice"
    world.run_pod("s1-1")
    body = world.kube.obj("claudeaccounts", "alice")
    assert body is not None
    body["metadata"]["annotations"] = {"headroom.dev/drill": "drill-1"}
    world.kube.writes.clear()

    await world.reconcile_account("alice")
    assert world.kube.verbs() == [("patch-status", "claudeaccounts", "alice")]
    assert world.kube.writes[0][3]["drill"]["sessionsToMove"] == 1
    assert world.rt.wakeups.pending(("session", NS, "s1")) == world.clock.now

    world.clock.advance(1)
    await world.reconcile("s1")  # stops the pod on the drilled account
    assert world.kube.verbs()[-2:] == [
        ("delete", "pods", "s1-1"),
        ("patch-status", "agentsessions", "s1"),
    ]
    world.clock.advance(2)
    world.end_pod("s1-1", failed("Stopped by SIGTERM"), code=143, seconds=3)
    await world.reconcile("s1")
    assert world.status("s1")["account"] == "bob"

    world.kube.writes.clear()
    await world.reconcile_account("alice")
    (write,) = world.kube.writes
    assert write[3]["drill"]["sessionsMoved"] == 1
    assert write[3]["drill"]["completedAt"] == at(3)
    assert write[3]["drill"]["moveSeconds"] == 3.0
    assert world.events[-1][1:] == ("DrillCompleted", "moved 1 session(s) in 3.0s")


async def test_a_long_drill_annotation_is_recorded_short(world: World) -> None:
    await available(world, "alice")
    body = world.kube.obj("claudeaccounts", "alice")
    assert body is not None
    body["metadata"]["annotations"] = {"headroom.dev/drill": "é" * 400}
    await world.reconcile_account("alice")
    value = world.account_status("alice")["drill"]["value"]
    assert len(value) == 63 and len(value.encode()) <= 253


async def test_a_same_named_account_of_another_namespace_keeps_its_secret_reaction(
    world: World,
) -> None:
    """Each namespace's `alice` reads its own Secret: a pass of this one must not make the
    other one blind to its Secret's rotation (or the reverse)."""
    world.rt.secret_refs[("other-team", "alice")].add(("other-team", "alice"))
    world.rt.secret_refs[(NS, "old-secret")].add((NS, "alice"))  # this alice's earlier Secret
    await available(world, "alice")
    assert world.rt.secret_refs[("other-team", "alice")] == {("other-team", "alice")}
    assert world.rt.secret_refs[(NS, "alice")] == {(NS, "alice")}
    assert world.rt.secret_refs[(NS, "old-secret")] == set()
