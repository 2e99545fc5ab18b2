"""The benchmark's witness: watches agent pods and AgentSessions in one namespace and writes
one JSON line per change that matters, stamped with the local time the watch event arrived.

It runs as its own process (`python -m tests.bench.recorder KUBECONFIG NAMESPACE OUT`) so that
the driver's own work (creating thousands of objects, patching pods) cannot delay the stamps.
Lines: {"t": epoch seconds, "k": "pod"|"session", "e": ADDED|MODIFIED|DELETED, "n": name, ...}
and one {"k": "ready"} once both watches are open.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from kubernetes import client, config

from headroom.contract.pod import ANN_ACCOUNT, ANN_SESSION, LABEL_ATTEMPT, LABEL_MANAGED, MANAGER

GROUP, VERSION = "headroom.dev", "v1alpha1"
JSON = dict[str, Any]


def pod_fields(pod: JSON) -> JSON:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    annotations = meta.get("annotations") or {}
    terminated = any(
        (cs.get("state") or {}).get("terminated") for cs in status.get("containerStatuses") or []
    )
    return {
        "s": annotations.get(ANN_SESSION, ""),
        "a": annotations.get(ANN_ACCOUNT, ""),
        "at": int((meta.get("labels") or {}).get(LABEL_ATTEMPT, "0") or 0),
        "ph": status.get("phase", ""),
        "term": terminated,
        "del": bool(meta.get("deletionTimestamp")),
        "node": bool((pod.get("spec") or {}).get("nodeName")),
    }


def session_fields(session: JSON) -> JSON:
    status = session.get("status") or {}
    return {
        "ph": status.get("phase", ""),
        "at": int(status.get("attempt", 0) or 0),
        "pod": status.get("podName", ""),
        "acc": status.get("account", ""),
    }


def _lines(response: Any) -> Iterator[tuple[float, bytes]]:
    """Complete lines of a streamed watch, each with the time its chunk arrived."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        arrived = time.time()
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield arrived, line


class Recorder:
    def __init__(self, api: client.ApiClient, namespace: str, out: IO[str]) -> None:
        self.api = api
        self.ns = namespace
        self.out = out
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], JSON] = {}
        self.opened = threading.Event()
        self.opened_count = 0

    def write(self, record: JSON) -> None:
        with self.lock:
            self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.out.flush()

    def run(self, kind: str, call: Callable[..., Any], fields: Callable[[JSON], JSON]) -> None:
        """A dead watch must not look like a quiet cluster: record why, and end the process."""
        try:
            self.watch(kind, call, fields)
        except BaseException as exc:  # anything at all ends the witness
            self.write({"t": time.time(), "k": "error", "detail": f"{kind}: {exc!r}"})
            os._exit(2)

    def watch(self, kind: str, call: Callable[..., Any], fields: Callable[[JSON], JSON]) -> None:
        """List once, then watch from there forever, resuming after server-side timeouts."""
        listing = json.loads(call(_preload_content=False).data)
        version = listing["metadata"]["resourceVersion"]
        for item in listing.get("items") or []:
            self.note(time.time(), kind, "ADDED", item, fields)
        first = True
        while True:
            response = call(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=3600,
                _preload_content=False,
            )
            if first:
                first = False
                with self.lock:
                    self.opened_count += 1
                    if self.opened_count == 2:
                        self.opened.set()
            for arrived, line in _lines(response):
                event = json.loads(line)
                obj = event.get("object") or {}
                version = (obj.get("metadata") or {}).get("resourceVersion", version)
                if event.get("type") == "ERROR":
                    self.write({"t": arrived, "k": "error", "detail": obj})
                    raise SystemExit(f"{kind} watch failed: {obj}")
                if event.get("type") == "BOOKMARK":
                    continue
                self.note(arrived, kind, event["type"], obj, fields)

    def note(
        self, arrived: float, kind: str, type_: str, obj: JSON, fields: Callable[[JSON], JSON]
    ) -> None:
        name = obj["metadata"]["name"]
        current = fields(obj)
        key = (kind, name)
        if type_ != "DELETED" and self.seen.get(key) == current:
            return  # nothing we track changed (e.g. a condition's timestamp)
        self.seen[key] = current
        self.write({"t": arrived, "k": kind, "e": type_, "n": name, **current})


def main(argv: list[str]) -> int:
    kubeconfig, namespace, out_path = argv
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    api.user_agent = "headroom-bench/recorder"
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def pods(**kw: Any) -> Any:
        return core.list_namespaced_pod(
            namespace, label_selector=f"{LABEL_MANAGED}={MANAGER}", **kw
        )

    def sessions(**kw: Any) -> Any:
        return custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "agentsessions", **kw
        )

    with open(out_path, "a") as out:
        recorder = Recorder(api, namespace, out)
        kinds = (("pod", pods, pod_fields), ("session", sessions, session_fields))
        for kind, call, fields in kinds:
            threading.Thread(
                target=recorder.run, args=(kind, call, fields), daemon=True, name=kind
            ).start()
        if not recorder.opened.wait(60):
            raise SystemExit("watches did not open within 60s")
        recorder.write({"t": time.time(), "k": "ready"})
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
