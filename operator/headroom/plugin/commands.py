"""What each subcommand reads, writes and prints."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any

from headroom.contract.crd import DRILL_VALUE_CHARS
from headroom.contract.scrub import snippet
from headroom.core.drill import DRILL_ANNOTATION
from headroom.plugin.actions import drill_patch, pause_patch
from headroom.plugin.cluster import Cluster
from headroom.plugin.errors import PluginError
from headroom.plugin.kinds import ACCOUNT_KINDS, AGENT_SESSION, Kind, Listing, account_ref
from headroom.plugin.status_view import render_status
from headroom.plugin.text import until, wrap
from headroom.plugin.why_view import render_why

JSON = dict[str, Any]
AGENT_CONTAINER = "agent"


def now() -> datetime:
    return datetime.now(UTC)


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


async def status(cluster: Cluster, namespace: str) -> str:
    accounts = [await listing(cluster, kind, namespace) for kind in ACCOUNT_KINDS]
    sessions = await cluster.items(AGENT_SESSION, namespace)
    return render_status(namespace, accounts, sessions, now(), terminal_width())


async def listing(cluster: Cluster, kind: Kind, namespace: str) -> Listing:
    try:
        return Listing(kind, tuple(await cluster.items(kind, namespace)))
    except PluginError as exc:
        return Listing(kind, problem=str(exc))


async def why(cluster: Cluster, namespace: str, name: str) -> str:
    session = await cluster.get(AGENT_SESSION, namespace, name)
    events = await cluster.session_events(namespace, name)
    return render_why(session, events, now(), terminal_width())


async def drill(
    cluster: Cluster, namespace: str, ref: str, duration: str | None, wait: float
) -> str:
    kind, name = account_ref(ref)
    patch = drill_patch(now(), duration)
    value = patch["metadata"]["annotations"][DRILL_ANNOTATION]
    await cluster.merge_patch(kind, namespace, name, patch)
    if wait <= 0:
        return f"drill asked on {kind.name} {name} ({DRILL_ANNOTATION}={value})\n"
    recorded_as = snippet(value, limit=DRILL_VALUE_CHARS)
    recorded = await wait_for_drill(cluster, kind, namespace, name, recorded_as, wait)
    if recorded is None:
        said = (
            f"drill asked on {kind.name} {name}, but the operator has not started it "
            f"within {wait:g}s: is it running and watching namespace {namespace}?"
        )
    else:
        said = (
            f"drill started on {kind.name} {name}: treated as walled for "
            f"{until(recorded.get('until'), now())}; {recorded.get('sessionsToMove', 0)} "
            f"session(s) to move. Follow it with: kubectl headroom status -n {namespace}"
        )
    return "\n".join(wrap(said, terminal_width(), "")) + "\n"


async def wait_for_drill(
    cluster: Cluster, kind: Kind, namespace: str, name: str, recorded_as: str, wait: float
) -> JSON | None:
    """status.drill once the operator has started this drill: it records the annotation's
    value as `recorded_as` (a one-line excerpt), so no clock needs to agree with it."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        account = await cluster.get(kind, namespace, name)
        recorded = (account.get("status") or {}).get("drill") or {}
        if recorded.get("value") == recorded_as:
            return dict(recorded)
        await asyncio.sleep(0.5)
    return None


async def pause(cluster: Cluster, namespace: str, ref: str, paused: bool) -> str:
    kind, name = account_ref(ref)
    account = await cluster.get(kind, namespace, name)
    if bool((account.get("spec") or {}).get("paused")) == paused:
        return f"{kind.name} {name} is already {'paused' if paused else 'not paused'}\n"
    await cluster.merge_patch(kind, namespace, name, pause_patch(paused))
    if paused:
        said = "paused: no new sessions are placed on it; running sessions stay"
    else:
        said = "resumed: it takes new sessions again"
    return (
        f"{kind.name} {name} {said}\n"
        "(kept in Git? change spec.paused there too, or the next sync undoes this)\n"
    )


async def logs(
    cluster: Cluster, namespace: str, name: str, container: str, follow: bool, tail: int | None
) -> None:
    session = await cluster.get(AGENT_SESSION, namespace, name)
    pod = current_pod(session)
    options = [("container", container)]
    if follow:
        options.append(("follow", "true"))
    if tail is not None:
        options.append(("tailLines", str(tail)))
    out = sys.stdout.buffer
    received = 0
    async for chunk in cluster.pod_log(namespace, pod, options):
        received += len(chunk)
        out.write(chunk)
        out.flush()
    if not received:
        # The API server answers a pod that has not started with no content at all, which
        # reads as if the command had failed silently: say what the pod is doing instead.
        print(await no_log_yet(cluster, namespace, name, pod, container), file=sys.stderr)


async def no_log_yet(
    cluster: Cluster, namespace: str, session: str, pod: str, container: str
) -> str:
    found = await cluster.pod(namespace, pod)
    phase = ((found or {}).get("status") or {}).get("phase") or "gone"
    node = ((found or {}).get("spec") or {}).get("nodeName")
    where = f"on node {node}" if node else "not on a node yet"
    return (
        f"(no log from container {container} of pod {pod}: the pod is {phase}, {where}; "
        f"see: kubectl headroom why {session})"
    )


def current_pod(session: JSON) -> str:
    status = session.get("status") or {}
    pod = status.get("podName")
    if not pod:
        phase = status.get("phase") or "not seen by the operator yet"
        raise PluginError(
            f"{AGENT_SESSION.name} {session['metadata']['name']} has no pod ({phase}); "
            f"see: kubectl headroom why {session['metadata']['name']}"
        )
    return str(pod)
