"""What the passes read from the watches' copies instead of the API server, and why a stale
copy costs at most a second read, never a wrong write."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from headroom.kube.cache import (
    ObjectCache,
    SecretCache,
    newer,
    slim_pod,
    without_managed_fields,
)
from headroom.reconcilers import account, session

from .conftest import NS, World, walled

JSON = dict[str, Any]


def body(name: str, version: str, **extra: Any) -> JSON:
    return {"metadata": {"namespace": NS, "name": name, "resourceVersion": version}, **extra}


def session_reads(world: World) -> list[str]:
    """The sessions the fake API server is asked for from now on, in order."""
    reads: list[str] = []
    original = world.kube.get_session

    async def counted(namespace: str, name: str) -> JSON | None:
        reads.append(name)
        return await original(namespace, name)

    world.kube.get_session = counted  # type: ignore[method-assign]
    return reads


def object_reads(world: World) -> list[str]:
    """The core objects ("plural/name") the fake API server is asked for from now on."""
    reads: list[str] = []
    original = world.kube.get

    async def counted(namespace: str, plural: str, name: str) -> JSON | None:
        reads.append(f"{plural}/{name}")
        return await original(namespace, plural, name)

    world.kube.get = counted  # type: ignore[method-assign]
    return reads


def test_a_lagging_watch_event_never_replaces_a_newer_write() -> None:
    cache = ObjectCache()
    cache.put(body("s", "12", status={"attempt": 2}))
    cache.put(body("s", "11", status={"attempt": 1}))
    assert (cache.get(NS, "s") or {})["status"] == {"attempt": 2}
    cache.put(body("s", "13", status={"attempt": 3}))
    assert (cache.get(NS, "s") or {})["status"] == {"attempt": 3}


def test_versions_that_are_no_numbers_are_always_news() -> None:
    assert newer("abc", "12") and newer("12", "abc") and newer("12", "12")
    assert not newer("9", "10")


def test_dropped_objects_are_gone() -> None:
    cache = ObjectCache()
    cache.put(body("s", "1"))
    cache.drop(NS, "s")
    assert cache.get(NS, "s") is None and len(cache) == 0


def test_the_pod_copy_keeps_what_a_pass_reads_and_no_spec() -> None:
    pod = body(
        "s-1",
        "5",
        spec={"nodeName": "n1", "containers": [{"name": "agent", "env": [{"name": "X"}]}]},
        status={"phase": "Failed"},
    )
    pod["metadata"].update(annotations={"a": "b"}, managedFields=[{"big": 1}])
    slim = slim_pod(pod)
    assert slim["spec"] == {"nodeName": "n1"}
    assert slim["status"] == {"phase": "Failed"}
    assert slim["metadata"]["annotations"] == {"a": "b"}
    assert "managedFields" not in slim["metadata"]


def test_managed_fields_are_left_out_and_nothing_else() -> None:
    session_body = body("s", "3", spec={"prompt": "p"})
    session_body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    kept = without_managed_fields(session_body)
    assert kept["spec"] == {"prompt": "p"} and "managedFields" not in kept["metadata"]
    assert "managedFields" in session_body["metadata"]  # the watch's own copy is untouched


async def _running_on_a(world: World) -> None:
    world.account("a", max_sessions=2)
    world.account("b", max_sessions=2)
    world.session("s1")
    await world.reconcile("s1")
    world.run_pod("s1-1")


async def test_a_watched_pass_decides_on_the_copy_without_reading_the_session(
    world: World,
) -> None:
    await _running_on_a(world)
    reads = session_reads(world)
    world.end_pod("s1-1", walled(), 75)
    await session.reconcile(world.rt, NS, "s1", watched=True)
    assert reads == []  # the copy the first pass wrote was enough
    assert world.status("s1")["attempt"] == 2
    assert world.status("s1")["account"] == "b"


async def test_a_timer_reads_the_session_from_the_api_server(world: World) -> None:
    await _running_on_a(world)
    reads = session_reads(world)
    await session.reconcile(world.rt, NS, "s1")
    assert reads == ["s1"]


async def test_a_stale_copy_costs_a_second_read_and_nothing_else(world: World) -> None:
    await _running_on_a(world)
    stale = copy.deepcopy(world.rt.sessions.get(NS, "s1"))
    assert stale is not None
    # Someone else changed the session after the operator's copy was taken.
    current = world.kube.obj("agentsessions", "s1")
    assert current is not None
    current["metadata"]["annotations"] = {"note": "edited"}
    world.kube.put("agentsessions", current)
    world.rt.sessions.put(stale)  # what a lagging watch left
    world.end_pod("s1-1", walled(), 75)
    await session.reconcile(world.rt, NS, "s1", watched=True)

    status_writes = [w for w in world.kube.writes if w[0] == "patch-status" and w[2] == "s1"]
    refused, accepted = status_writes[-2], status_writes[-1]
    assert refused[3]["attempt"] == accepted[3]["attempt"] == 2  # the same decision, redone
    assert world.status("s1")["attempt"] == 2
    asked = [n for verb, plural, n in world.kube.verbs() if (verb, plural) == ("create", "pods")]
    # The second pass asked for the same pod name and adopted the pod the first one made.
    assert asked == ["s1-1", "s1-2", "s1-2"]
    pods = [name for plural, name in world.kube.objects if plural == "pods"]
    assert sorted(pods) == ["s1-1", "s1-2"]
    reasons = [reason for _, reason, _ in world.events]
    assert reasons.count("Swapped") == 1  # the refused pass recorded nothing


async def test_an_ended_pod_is_read_from_its_copy_and_a_running_one_from_the_server(
    world: World,
) -> None:
    await _running_on_a(world)
    reads = object_reads(world)
    world.rt.pods.put(copy.deepcopy(world.pod("s1-1")))  # running, as the watch saw it
    assert await world.rt.read_pod(NS, "s1-1") is not None
    assert reads == ["pods/s1-1"]
    world.end_pod("s1-1", walled(), 75)
    ended_pod = copy.deepcopy(world.pod("s1-1"))
    ended_pod["metadata"]["resourceVersion"] = "999"
    world.rt.pods.put(ended_pod)
    world.kube.objects.pop(("pods", "s1-1"))  # deleted since: the copy still tells the end
    ended = await world.rt.read_pod(NS, "s1-1")
    assert ended is not None and ended["status"]["phase"] == "Failed"
    assert reads == ["pods/s1-1"]


async def test_a_pod_the_cache_never_saw_is_read_not_taken_as_gone(world: World) -> None:
    await _running_on_a(world)
    assert await world.rt.read_pod(NS, "s1-1") is not None


async def test_workspace_claims_known_to_the_index_need_no_read(world: World) -> None:
    claims: dict[tuple[str, str], list[bool]] = {(NS, "kept"): [True], (NS, "going"): [False]}
    world.rt._claims_index = claims
    reads = object_reads(world)
    assert await world.rt.claim_usable(NS, "kept")
    assert not await world.rt.claim_usable(NS, "going")
    assert not await world.rt.claim_usable(NS, "unknown")  # not indexed: read, and missing
    assert reads == ["persistentvolumeclaims/unknown"]


def test_a_secret_read_holds_until_a_watch_reports_a_newer_version() -> None:
    secrets = SecretCache()
    secrets.put(NS, "alice", body("alice", "7", data={"token": "eA=="}))
    assert secrets.get(NS, "alice") is not None  # no report yet: as read
    secrets.seen(NS, "alice", "7")
    assert secrets.get(NS, "alice") is not None  # the version read
    secrets.seen(NS, "alice", "8")
    assert secrets.get(NS, "alice") is None  # changed since: read again
    secrets.put(NS, "alice", body("alice", "8", data={"token": "eQ=="}))
    assert secrets.get(NS, "alice") is not None
    secrets.seen(NS, "alice", None)
    assert secrets.get(NS, "alice") is None  # deleted


def test_a_read_that_raced_a_change_is_not_trusted() -> None:
    secrets = SecretCache()
    secrets.seen(NS, "alice", "9")  # the change arrived while the read was under way
    secrets.put(NS, "alice", body("alice", "8"))
    assert secrets.get(NS, "alice") is None


async def test_an_account_reconcile_on_its_copy_reads_the_secret_once(world: World) -> None:
    world.secret("alice", token="t")
    world.new_account("alice")
    reads = object_reads(world)
    await account.reconcile(world.rt, NS, "alice", watched=True)
    await account.reconcile(world.rt, NS, "alice", watched=True)
    assert reads == ["secrets/alice"]
    world.secret("alice", token="rotated")
    await account.reconcile(world.rt, NS, "alice", watched=True)
    assert reads == ["secrets/alice", "secrets/alice"]


async def test_an_account_status_write_on_a_stale_copy_is_redone_on_a_fresh_read(
    world: World,
) -> None:
    world.secret("alice", token="t")
    world.new_account("alice")
    await account.reconcile(world.rt, NS, "alice", watched=True)
    stale = copy.deepcopy(world.rt.accounts.get(NS, "alice"))
    assert stale is not None
    current = world.kube.obj("claudeaccounts", "alice")
    assert current is not None
    current["spec"]["maxSessions"] = 4  # changed by its owner; the watch has not told yet
    current["metadata"]["generation"] = 2
    world.kube.put("claudeaccounts", current)
    world.rt.accounts.put(stale)
    # Something to write (a wall a session reported), decided on the stale copy first.
    world.rt.roster.note(NS, "alice", walled_until=world.clock.now + timedelta(hours=1))
    await account.reconcile(world.rt, NS, "alice", watched=True)
    status = world.account_status("alice")
    assert (status["phase"], status["observedGeneration"]) == ("Walled", 2)
    writes = [w for w in world.kube.writes if w[:3] == ("patch-status", "claudeaccounts", "alice")]
    assert writes[-2][3]["phase"] == writes[-1][3]["phase"] == "Walled"  # refused, then redone
