"""The operator's own watch of agent pods, against a fake API: what it indexes and caches,
which events start a session pass, and when placement may start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_ATTEMPT
from headroom.kube.client import Kube
from headroom.reconcilers.pod_watch import PodWatch
from headroom.reconcilers.runtime import Runtime, Settings

JSON = dict[str, Any]
NS = "team"


def pod(name: str, session: str, attempt: int, phase: str = "Running", version: str = "1") -> JSON:
    return {
        "metadata": {
            "namespace": NS,
            "name": name,
            "resourceVersion": version,
            "labels": {LABEL_ATTEMPT: str(attempt)},
            "annotations": {ANN_SESSION: session, ANN_ACCOUNT: "alice"},
        },
        "status": {"phase": phase},
    }


@dataclass
class WatchedKube:
    """Lists `listed`, then streams what the test puts in `events` (None ends the watch)."""

    listed: list[JSON] = field(default_factory=list)
    events: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)
    lists: int = 0

    async def list_with_version(
        self, namespace: str | None, plural: str, selector: str
    ) -> tuple[str, list[JSON]]:
        self.lists += 1
        return "10", list(self.listed)

    async def watch(
        self, namespace: str | None, plural: str, version: str, selector: str
    ) -> AsyncIterator[JSON]:
        while (event := await self.events.get()) is not None:
            yield event


@dataclass
class Passes:
    started: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(
        self, rt: Runtime, namespace: str, name: str, *, watched: bool = False
    ) -> None:
        self.started.append((namespace, name))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def start(
    kube: WatchedKube, patterns: tuple[str, ...] = ()
) -> tuple[Runtime, PodWatch, Passes, asyncio.Task[None]]:
    rt = Runtime(cast(Kube, kube), Settings())
    rt.pods_synced.clear()
    passes = Passes()
    rt.reconcile_session = passes
    watch = PodWatch(rt, patterns)
    task = asyncio.create_task(watch.run())
    await settle()
    return rt, watch, passes, task


async def test_the_first_list_fills_the_index_and_lets_placement_start() -> None:
    kube = WatchedKube(listed=[pod("s1-1", "s1", 1), pod("s2-1", "s2", 1, "Failed")])
    rt, watch, passes, task = await start(kube)
    try:
        assert rt.pods_synced.is_set()
        assert [p.name for p in watch.live[(NS, "s1")]] == ["s1-1"]
        assert (NS, "s2") not in watch.live  # ended: not live
        assert passes.started == [(NS, "s2")]  # its ending is read by a pass
        assert rt.pods.get(NS, "s2-1") is not None
    finally:
        task.cancel()


async def test_only_endings_start_passes_and_the_cache_follows_every_event() -> None:
    kube = WatchedKube()
    rt, watch, passes, task = await start(kube)
    try:
        await kube.events.put({"type": "ADDED", "object": pod("s1-1", "s1", 1, "Pending")})
        await kube.events.put({"type": "MODIFIED", "object": pod("s1-1", "s1", 1, "Running", "2")})
        await settle()
        assert passes.started == []
        assert (rt.pods.get(NS, "s1-1") or {})["status"]["phase"] == "Running"
        await kube.events.put({"type": "MODIFIED", "object": pod("s1-1", "s1", 1, "Failed", "3")})
        await settle()
        assert passes.started == [(NS, "s1")]
        assert (NS, "s1") not in watch.live
        await kube.events.put({"type": "DELETED", "object": pod("s1-1", "s1", 1, "Failed", "4")})
        await settle()
        assert rt.pods.get(NS, "s1-1") is None
    finally:
        task.cancel()


async def test_a_superseded_attempt_starts_no_pass() -> None:
    kube = WatchedKube()
    rt, _, passes, task = await start(kube)
    try:
        rt.session_attempts[(NS, "s1")] = 2
        await kube.events.put({"type": "DELETED", "object": pod("s1-1", "s1", 1, "Failed")})
        await settle()
        assert passes.started == []
    finally:
        task.cancel()


async def test_a_pod_gone_while_no_watch_ran_is_dropped_on_the_next_list() -> None:
    kube = WatchedKube(listed=[pod("s1-1", "s1", 1)])
    rt, watch, passes, task = await start(kube)
    try:
        kube.listed = []
        await kube.events.put({"type": "ERROR", "object": {"code": 410}})
        await settle()
        assert kube.lists == 2
        assert (NS, "s1") not in watch.live and rt.pods.get(NS, "s1-1") is None
        assert passes.started == [(NS, "s1")]
    finally:
        task.cancel()


async def test_a_standby_defers_its_passes_until_it_leads() -> None:
    kube = WatchedKube()
    rt, _, passes, task = await start(kube)
    try:
        rt.active.clear()
        await kube.events.put({"type": "MODIFIED", "object": pod("s1-1", "s1", 1, "Failed")})
        await settle()
        assert passes.started == []
        rt.active.set()
        await settle()
        assert passes.started == [(NS, "s1")]
    finally:
        task.cancel()


async def test_patterns_are_matched_against_the_namespaces_seen() -> None:
    kube = WatchedKube()
    rt = Runtime(cast(Kube, kube), Settings())
    rt._namespaces_index = {"team-a": [{}], "team-b": [{}], "other": [{}]}
    watch = PodWatch(rt, ("team-*", "exact"))
    assert watch._wanted() == {"team-a", "team-b", "exact"}
    assert PodWatch(rt, ("team-*, !team-b",))._wanted() == {"team-a"}  # kopf's own syntax
    assert PodWatch(rt, ())._wanted() == {None}


async def test_a_watch_the_server_ends_goes_on_from_its_last_version_without_a_list() -> None:
    kube = WatchedKube()
    versions: list[str] = []
    original = kube.watch

    async def watch(*args: Any) -> AsyncIterator[JSON]:
        versions.append(args[2])
        async for event in original(*args):
            yield event

    kube.watch = watch  # type: ignore[method-assign]
    _, _, _, task = await start(kube)
    try:
        await kube.events.put({"type": "ADDED", "object": pod("s1-1", "s1", 1, version="12")})
        await kube.events.put(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}
        )
        await kube.events.put(None)  # the server's timeout
        await settle()
        assert kube.lists == 1
        assert versions == ["10", "15"]
    finally:
        task.cancel()
