"""High availability through kopf peering: replicas with distinct priorities share one peering
object; only the live replica with the highest priority handles events, the others stand by and
take over once its keep-alive record is older than its lifetime (kopf's own rule).

kopf pauses only its watch streams. The operator also acts from its own timers (wake-ups,
account status flushes), so this module watches the same peering record and holds a gate that
those timers wait on: a replica that kopf pauses stops acting on its timers too.

kopf needs its peering CRD (group kopf.dev; manifests/kopf/) and a peering object per watched
namespace (or one cluster-wide). Without the CRD, kopf would pause forever in silence, so
`prepare` fails loudly instead; a missing peering object is created.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from headroom.core.durations import parse_time
from headroom.kube.client import KOPF_API, Kube, KubeError, api_path, group_path, peering_kind
from headroom.reconcilers import metrics
from headroom.reconcilers.clock import Clock

log = logging.getLogger("headroom.peering")

CRD_HINT = "install it with: kubectl apply -f manifests/kopf/peering-crds.yaml"


class PeeringUnavailable(RuntimeError):
    """Peering was requested but cannot work; the message says what to do."""


def own_identity() -> str:
    """Unique per process, readable in the peering object: host (the pod name in a cluster),
    pid, and a random suffix so a restarted container is a new peer."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def peering_problem(discovery: Mapping[str, Any] | None, clusterwide: bool) -> str | None:
    """What is missing for kopf peering, from the API discovery document of kopf.dev/v1."""
    plural, kind = peering_kind(clusterwide)
    served = {r.get("name") for r in (discovery or {}).get("resources") or []}
    if plural in served:
        return None
    return (
        f"--peering needs kopf's peering CRD ({kind}, {plural}.kopf.dev) in the cluster, and it "
        f"is not installed; {CRD_HINT}"
    )


def peering_path(name: str, namespace: str | None) -> str:
    plural, _ = peering_kind(namespace is None)
    return api_path(KOPF_API, plural, namespace, name)


def literal_namespaces(patterns: Sequence[str]) -> list[str]:
    """Namespaces named exactly; patterns (globs, negations, lists) name no object to make."""
    return [p for p in patterns if not set(p) & set("*?[]!,")]


async def prepare(
    kube: Kube, name: str, namespaces: Sequence[str], clusterwide: bool
) -> list[str | None]:
    """Check the CRD and make sure each peering object exists. Returns the peering objects'
    namespaces (None: the cluster-wide one)."""
    problem = peering_problem(await kube.request("GET", group_path(KOPF_API)), clusterwide)
    if problem:
        raise PeeringUnavailable(problem)
    targets: list[str | None] = [None] if clusterwide else list(literal_namespaces(namespaces))
    if not clusterwide and len(targets) != len(namespaces):
        log.warning(
            "peering with namespace patterns: kopf pauses the whole operator for a matched "
            "namespace that has no KopfPeering %r; create it there, or use -A",
            name,
        )
    for namespace in targets:
        # The operator makes the peering object itself: Git should not own an object whose
        # status kopf rewrites every few seconds (it would always look OutOfSync).
        try:
            if await kube.ensure_peering(namespace, name):
                log.info("created kopf peering object %r in %s", name, namespace or "the cluster")
        except KubeError as exc:
            where = f"namespace {namespace}" if namespace else "the cluster"
            raise PeeringUnavailable(
                f"cannot create kopf peering object {name!r} in {where} "
                f"({exc.status} {exc.reason}: {exc.message}); create it, or let the operator "
                "create it (RBAC verb 'create' on kopfpeerings.kopf.dev)"
            ) from None
    return targets


def is_active(records: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """kopf's rule, read from a peering object's status: this replica acts when its own record
    is there and no other live peer has the same or a higher priority."""
    if identity not in records:
        return False  # kopf stays paused until it has seen its own keep-alive
    for peer, info in records.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = parse_time(info.get("lastseen"))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
            rank = int(info.get("priority", 0))
        except (TypeError, ValueError):
            return False  # a record we cannot read might be a live peer: stand by
        alive = seen is None or seen + lifetime > now
        if alive and rank >= priority:
            return False
    return True


async def watch_leadership(
    kube: Kube,
    name: str,
    targets: Sequence[str | None],
    identity: str,
    priority: int,
    gate: asyncio.Event,
    interval: float,
    clock: Clock,
) -> None:
    """Keep `gate` set exactly while this replica is the active peer everywhere it peers."""
    metrics.operator_active.set(0)
    while True:
        try:
            now = clock()
            verdicts = []
            for namespace in targets:
                body = await kube.request("GET", peering_path(name, namespace)) or {}
                verdicts.append(is_active(body.get("status") or {}, identity, priority, now))
            active = all(verdicts)
            if active != gate.is_set():
                log.info(
                    "peering %r: this replica (%s, priority %d) is now %s",
                    name,
                    identity,
                    priority,
                    "active" if active else "standing by",
                )
            if active:
                gate.set()
            else:
                gate.clear()
            metrics.operator_active.set(1 if active else 0)
        except KubeError as exc:  # keep the last verdict; kopf cannot act either
            log.warning("peering %r: cannot read the peering object: %s", name, exc)
        await asyncio.sleep(interval)
