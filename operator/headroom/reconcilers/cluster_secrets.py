"""Notices a rotated credential of a ClusterClaudeAccount.

Those Secrets live in the operator's namespace, which the operator need not serve (its
kopf watches cover the agents' namespaces). So it keeps one watch of its own there, of
metadata only: a changed resourceVersion is all it needs to check the accounts that read
the Secret again, and the data stays on the API server until the reconciler reads it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from headroom.kube.client import KubeError
from headroom.reconcilers.runtime import Runtime

log = logging.getLogger("headroom.account")
JSON = dict[str, Any]
_PAUSE = timedelta(seconds=5)  # before listing again after an API error


async def watch(rt: Runtime) -> None:
    """Runs for the operator's lifetime: list, then watch from the list's version; list
    again when the watch ends or the server says the version is too old."""
    seen: dict[str, str] = {}
    namespace = rt.settings.cluster_account_namespace
    while True:
        await rt.active.wait()
        try:
            version, items = await rt.kube.list_metadata(namespace, "secrets")
            names = {item["metadata"]["name"] for item in items}
            for gone in set(seen) - names:
                changed(rt, seen, gone, None)
            for item in items:
                meta = item["metadata"]
                changed(rt, seen, meta["name"], meta.get("resourceVersion"))
            async for event in rt.kube.watch_metadata(namespace, "secrets", version):
                if event.get("type") == "ERROR":
                    break
                meta = (event.get("object") or {}).get("metadata") or {}
                if event.get("type") == "BOOKMARK" or "name" not in meta:
                    continue
                deleted = event.get("type") == "DELETED"
                changed(rt, seen, meta["name"], None if deleted else meta.get("resourceVersion"))
        except KubeError as exc:
            log.warning("watching Secrets in %s: %s; again in %s", namespace, exc, _PAUSE)
            await asyncio.sleep(_PAUSE.total_seconds())


def changed(rt: Runtime, seen: dict[str, str], name: str, version: str | None) -> None:
    """One Secret as the watch reports it (version None: deleted). A new version wakes the
    cluster accounts that read it; the first sighting after a (re)list counts as new, since
    it may have changed while nobody watched."""
    rt.secrets.seen(rt.settings.cluster_account_namespace, name, version)
    if version is not None and seen.get(name) == version:
        return
    if version is None:
        seen.pop(name, None)
    else:
        seen[name] = version
    now = rt.clock()
    readers = rt.secret_refs.get((rt.settings.cluster_account_namespace, name), set())
    for account_ns, account in sorted(readers):
        if not account_ns:
            rt.wakeups.at(("account", "", account), now)
