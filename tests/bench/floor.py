"""The failover floor: the least a client must do to move a walled session, as fast as the API
server accepts it. The benchmark runs it on the same cluster right after the operator's wave
(the operator stopped), walls the same sessions again, and times it with the same recorder.

    python -m tests.bench.floor KUBECONFIG NAMESPACE READY_FILE

Like the operator, it learns from a pod watch that an agent pod ended; then, per failover,
exactly the three writes a failover cannot avoid, in the operator's order: create the
replacement pod (the ended pod's own manifest under the next attempt's name: the operator's
shape and size), merge-patch the session's status with the fields the operator writes when it
records a swap, delete the ended pod. No reads, no Events, no account bookkeeping, no
placement decision (the replacement stays on the ended pod's account).

Concurrency is the operator's: its pod watch (headroom/reconcilers/pod_watch.py) starts one
task per ended pod without limit, as kopf does with a worker per object
(`settings.batching.worker_limit` is None), so the bound is the operator's HTTP client, an
aiohttp pool of 32 connections (`Transport(configuration, pool=32)` in
headroom/kube/client.py).
Here every failover is a task and the requests share one aiohttp pool of the same 32.
The watch has a connection of its own, as kopf's watches do.
"""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from headroom.contract.pod import (
    ANN_ACCOUNT,
    ANN_AUTH_PATH,
    ANN_SESSION,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    MANAGER,
)
from headroom.kube.transport import ssl_context

GROUP, VERSION = "headroom.dev", "v1alpha1"
CONNECTIONS = 32  # the operator's Kube client: connection_pool_maxsize
USER_AGENT = "headroom-bench/floor"
MERGE_PATCH = "application/merge-patch+json"
JSON = dict[str, Any]
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def ended(pod: JSON) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") in ("Failed", "Succeeded") or any(
        (cs.get("state") or {}).get("terminated") for cs in status.get("containerStatuses") or []
    )


def replacement(pod: JSON, attempt: int) -> JSON:
    """The ended pod's manifest as the next attempt: what the operator would create, with
    everything the API server, scheduler and kubelet added taken off."""
    new = copy.deepcopy(pod)
    new.update(apiVersion="v1", kind="Pod")  # a list's items carry neither
    new.pop("status", None)
    meta = new["metadata"]
    for key in (*SERVER_FIELDS, "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    session = meta["annotations"][ANN_SESSION]
    meta["name"] = f"{session}-{attempt}"
    meta["labels"][LABEL_ATTEMPT] = str(attempt)
    new["spec"].pop("nodeName", None)
    return new


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(old: JSON, new: JSON, attempt: int) -> JSON:
    """The fields the operator's pass writes when it records a swap (reconcilers/session.py
    _record_start and its two conditions), so the write is of comparable size."""
    annotations = old["metadata"].get("annotations") or {}
    account, now = annotations.get(ANN_ACCOUNT, ""), stamp()
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message,
         "lastTransitionTime": now, "observedGeneration": 1}
        for kind, reason, message in (
            ("Scheduled", "Placed", f"attempt {attempt} runs on {account} (token credentials)"),
            ("Ready", "Running", f"the agent runs on {account}"),
        )
    ]  # fmt: skip
    return {
        "status": {
            "phase": "Running",
            "account": account,
            "podName": new["metadata"]["name"],
            "previousPod": old["metadata"]["name"],
            "attempt": attempt,
            "attemptStartedAt": now,
            "authPath": annotations.get(ANN_AUTH_PATH, "token"),
            "swapCount": attempt - 1,
            "waitingUntil": None,
            "waitingSince": None,
            "waitingMessage": None,
            "retryAt": None,
            "pendingMove": None,
            "swaps": [{"from": account, "to": account, "at": now, "reason": "walled",
                       "window": "five_hour"}],
            "lastSwapAt": now,
            "conditions": conditions,
        }
    }  # fmt: skip


class Floor:
    def __init__(self, host: str, ssl_context: ssl.SSLContext, headers: dict[str, str]) -> None:
        self.host = host
        self.ssl = ssl_context
        self.headers = {**headers, "User-Agent": USER_AGENT}
        self.handled: set[str] = set()  # pods whose failover started
        self.tasks: set[asyncio.Task[None]] = set()
        self.failures = 0
        self.opened = False  # the watch opened once: the benchmark may start the wave

    async def run(self, namespace: str, ready: Path) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        writes = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=self.ssl)
        watches = aiohttp.TCPConnector(limit=1, ssl=self.ssl)
        async with (
            aiohttp.ClientSession(connector=writes, headers=self.headers) as self.http,
            aiohttp.ClientSession(connector=watches, headers=self.headers, timeout=timeout) as w,
        ):
            await self.watch(w, namespace, ready)

    async def watch(self, http: aiohttp.ClientSession, namespace: str, ready: Path) -> None:
        """List, then watch from the list's version; list and watch again whenever the watch
        ends or says it cannot go on (a loaded API server's watch cache may lag the list:
        "Too large resource version"). A pod that ended meanwhile is in the new list."""
        pods = f"{self.host}/api/v1/namespaces/{namespace}/pods"
        selector = {"labelSelector": f"{LABEL_MANAGED}={MANAGER}"}
        while True:
            version = await self.relist(http, pods, selector)
            params = {**selector, "watch": "1", "resourceVersion": version,
                      "allowWatchBookmarks": "true", "timeoutSeconds": "3600"}  # fmt: skip
            async with http.get(pods, params=params) as response:
                if response.status != 200:
                    print(f"the pod watch: {response.status}", file=sys.stderr, flush=True)
                    await asyncio.sleep(0.2)
                    continue
                if not self.opened:
                    self.opened = True
                    await asyncio.to_thread(ready.write_text, f"{time.time()}\n")
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        print(f"the pod watch: {event.get('object')}", file=sys.stderr, flush=True)
                        break
                    self.event(event)

    async def relist(self, http: aiohttp.ClientSession, pods: str, selector: JSON) -> str:
        """The pods as they are: ended ones with a successor are history, not work; an ended
        one without is handled as its watch event would have been."""
        async with http.get(pods, params=selector) as response:
            listing = await response.json()
        names = {p["metadata"]["name"] for p in listing["items"]}
        for pod in listing["items"]:
            if ended(pod) and self.successor(pod) in names:
                self.handled.add(pod["metadata"]["name"])
            else:
                self.event({"type": "MODIFIED", "object": pod})
        return str(listing["metadata"]["resourceVersion"])

    def successor(self, pod: JSON) -> str:
        meta = pod["metadata"]
        attempt = int(meta["labels"][LABEL_ATTEMPT])
        return f"{meta['annotations'][ANN_SESSION]}-{attempt + 1}"

    def event(self, event: JSON) -> None:
        pod = event.get("object") or {}
        name = (pod.get("metadata") or {}).get("name")
        if event.get("type") not in ("ADDED", "MODIFIED") or name in self.handled:
            return
        if not ended(pod) or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        self.handled.add(name)
        self.start(pod)

    def start(self, pod: JSON) -> None:
        task = asyncio.create_task(self.failover(pod))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def failover(self, old: JSON) -> None:
        meta = old["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        attempt = int(meta["labels"][LABEL_ATTEMPT]) + 1
        new = replacement(old, attempt)
        session = meta["annotations"][ANN_SESSION]
        base = f"{self.host}/api/v1/namespaces/{namespace}/pods"
        status = (
            f"{self.host}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/agentsessions/"
            f"{session}/status"
        )
        try:
            await self.request("POST", base, new, "application/json")
            await self.request("PATCH", status, status_patch(old, new, attempt), MERGE_PATCH)
            await self.request("DELETE", f"{base}/{name}", None, "application/json")
        except RuntimeError as exc:
            self.failures += 1
            print(f"failover of {name}: {exc}", file=sys.stderr, flush=True)

    async def request(self, verb: str, url: str, body: JSON | None, content_type: str) -> None:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type}
        async with self.http.request(verb, url, data=data, headers=headers) as response:
            text = await response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"{verb} {url}: {response.status} {text[:300]!r}")


async def connect(kubeconfig: str) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    """Host, TLS context and auth header from the kubeconfig, as the operator's client has."""
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    context = ssl_context(configuration)  # the operator's own reading of the TLS settings
    headers: dict[str, str] = {}
    token = (configuration.api_key or {}).get("BearerToken") or (configuration.api_key or {}).get(
        "authorization"
    )
    if token:
        headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
    return configuration.host, context, headers


async def main_async(argv: list[str]) -> int:
    kubeconfig, namespace, ready = argv
    floor = Floor(*await connect(kubeconfig))
    await floor.run(namespace, Path(ready))
    return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return asyncio.run(main_async(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
