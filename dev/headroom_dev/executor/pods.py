"""Pods bound to the executor's node, each run by one worker thread (worker.py).

The manager follows the node's pods with a list-watch: it starts a worker for each new pod,
hands later versions of the pod to it, and confirms deletions with a grace-0 delete once the
pod's processes are gone, as a kubelet does. State lives under <state-dir>/pods/<pod-uid>/
(container.log, termination-log, init/<name>/..., process.json), so a restarted executor
knows which pods it had started."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from headroom_dev.executor import status
from headroom_dev.executor.envvars import ConfigError, decode_secret
from headroom_dev.executor.events import Recorder
from headroom_dev.executor.kube import SMP, ApiException, Kube, log
from headroom_dev.executor.status import State
from headroom_dev.executor.worker import SHUTDOWN_GRACE, PodWorker, Settings, start_ticks

JSON = dict[str, Any]
LOST_MESSAGE = (
    "the headroom dev executor restarted while this container ran; "
    "its process was stopped and its exit status is unknown"
)


class ClusterSources:
    """Secrets, ConfigMaps, claims and tokens, read through the API when a pod starts."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def object(self, kind: str, namespace: str, name: str) -> JSON | None:
        read = {
            "Secret": self.kube.core.read_namespaced_secret,
            "ConfigMap": self.kube.core.read_namespaced_config_map,
        }[kind]
        obj: JSON | None = self.kube.get(read, name, namespace)
        return obj

    def text(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        obj = self.object(kind, namespace, name)
        if obj is None:
            return None
        return decode_secret(obj.get("data")) if kind == "Secret" else obj.get("data") or {}

    def claim_dir(self, namespace: str, claim: str) -> Path:
        core = self.kube.core
        pvc = self.kube.get(core.read_namespaced_persistent_volume_claim, claim, namespace)
        if pvc is None:
            raise ConfigError(f'persistentvolumeclaim "{claim}" not found')
        volume = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not volume:
            raise ConfigError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.kube.get(core.read_persistent_volume, volume)
        spec = (pv or {}).get("spec") or {}
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            raise ConfigError(f"volume {volume} is neither hostPath nor local: cannot map it")
        local = Path(str(path))
        local.mkdir(parents=True, exist_ok=True)
        return local

    def token(self, pod: JSON, audience: str | None, seconds: int) -> str:
        meta = pod["metadata"]
        body = {
            "spec": {
                "audiences": [audience] if audience else None,
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]
                },
            }
        }  # fmt: skip
        account = pod["spec"].get("serviceAccountName") or "default"
        result = self.kube.call(
            self.kube.core.create_namespaced_service_account_token,
            account, meta["namespace"], body,
        )  # fmt: skip
        return str(result["status"]["token"])


def process_alive(pid: int, ticks: str) -> bool:
    """Still the same process, not a recycled pid?"""
    try:
        return start_ticks(pid) == ticks
    except OSError:
        return False


def kill_leftover(pod_dir: Path) -> JSON | None:
    """A process an earlier executor started for this pod: killed with its group."""
    try:
        record: JSON = json.loads((pod_dir / "process.json").read_text())
    except (OSError, ValueError):
        return None
    if process_alive(record["pid"], record["startTicks"]):
        log.warning("killing process %s left by an earlier executor", record["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record["pid"], signal.SIGKILL)
    return record


class PodManager:
    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.sources = ClusterSources(kube)
        self.recorder = Recorder(kube, settings.node)
        self.pods_dir = settings.state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.workers: dict[str, PodWorker] = {}
        self.done: set[str] = set()  # uids whose container ended in this executor's lifetime
        self.closing = False

    def pod_dir(self, pod: JSON) -> Path:
        return self.pods_dir / str(pod["metadata"]["uid"])

    def run(self, stop: threading.Event) -> None:
        first = True
        selector = f"spec.nodeName={self.settings.node}"
        core = self.kube.core
        for kind, obj in self.kube.list_watch(
            core.list_pod_for_all_namespaces, stop, field_selector=selector
        ):
            try:
                if kind == "SYNC":
                    self.resync(obj, first)
                    first = False
                elif kind == "DELETED":
                    self.vanished(obj)
                else:
                    self.sync(obj)
            except Exception:
                log.exception("handling a pod event failed")

    def resync(self, pods: list[JSON], first: bool) -> None:
        seen = {p["metadata"]["uid"] for p in pods}
        with self.lock:
            for uid, worker in list(self.workers.items()):
                if uid not in seen:
                    worker.vanish()
        if first:  # directories of pods that no longer exist: leftovers of a crash
            for pod_dir in self.pods_dir.iterdir():
                if pod_dir.name not in seen:
                    kill_leftover(pod_dir)
                    shutil.rmtree(pod_dir, ignore_errors=True)
        for pod in pods:
            self.sync(pod)

    def sync(self, pod: JSON) -> None:
        meta, pod_status = pod["metadata"], pod.get("status") or {}
        uid, deleting = meta["uid"], bool(meta.get("deletionTimestamp"))
        with self.lock:
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            if uid in self.done or pod_status.get("phase") in status.TERMINAL:
                if deleting:
                    self.finalize(pod)
                return
            started = any(s.kind != "waiting" for _, s in status.from_status(pod).ordered())
            record = kill_leftover(self.pod_dir(pod))
            if record is not None or started:
                self.report_lost(pod, record)
            elif self.closing:
                return  # shutting down: the next executor will find this pod Pending
            elif not deleting:
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
                return
            self.done.add(uid)
            if deleting:
                self.finalize(pod)

    def vanished(self, pod: JSON) -> None:
        """The object is gone (confirmed or force-deleted): nothing left to report to."""
        with self.lock:
            worker = self.workers.get(pod["metadata"]["uid"])
            if worker is not None:
                worker.vanish()
                return
        kill_leftover(self.pod_dir(pod))
        shutil.rmtree(self.pod_dir(pod), ignore_errors=True)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            uid = worker.pod["metadata"]["uid"]
            self.workers.pop(uid, None)
            self.done.add(uid)
            if worker.gone:
                shutil.rmtree(self.pod_dir(worker.pod), ignore_errors=True)
            elif worker.pod["metadata"].get("deletionTimestamp"):
                self.finalize(worker.pod)

    def report_lost(self, pod: JSON, record: JSON | None) -> None:
        """A pod an earlier executor started: the container it ran (the first of the run
        order that has not terminated) ends ExecutorRestarted; what ran before stays."""
        log.warning("pod %s/%s: its process is unknown after an executor restart",
                    pod["metadata"]["namespace"], pod["metadata"]["name"])  # fmt: skip
        state, rec = status.from_status(pod), record or {}
        lost = next(((n, s) for n, s in state.ordered() if s.kind != "terminated"), None)
        if lost is not None:
            name, old = lost
            same = rec.get("container", name) == name  # the record is of this container
            started_at = old.started_at or (rec.get("startedAt") if same else None)
            cid = old.cid or (rec.get("containerID") if same else None)
            lost_state = State.terminated(
                137, "ExecutorRestarted", LOST_MESSAGE, started_at=started_at, cid=cid
            )
            state.set(name, lost_state)
        self.report(pod, status.patch(pod, self.settings.ip, state))

    def report(self, pod: JSON, patch: JSON, attempts: int = 5) -> bool:
        """Write the status subresource; False when the pod no longer exists."""
        meta = pod["metadata"]
        for attempt in range(attempts):
            try:
                self.kube.call(
                    self.kube.core.patch_namespaced_pod_status,
                    meta["name"], meta["namespace"], patch, _content_type=SMP,
                )  # fmt: skip
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                log.warning("status of %s/%s: HTTP %s", meta["namespace"], meta["name"], exc.status)
            except Exception as exc:
                log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], exc)
            time.sleep(0.5 * (attempt + 1))
        return False

    def finalize(self, pod: JSON) -> None:
        """Confirm a deletion as a kubelet does once the pod's containers are gone."""
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.kube.call(
                self.kube.core.delete_namespaced_pod, meta["name"], meta["namespace"], body=body
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        shutil.rmtree(self.pod_dir(pod), ignore_errors=True)

    def shutdown(self) -> None:
        with self.lock:
            self.closing = True
            workers = list(self.workers.values())
        for worker in workers:
            worker.stopping = True
            worker.changed.set()
        for worker in workers:
            worker.join(SHUTDOWN_GRACE + 10)


__all__ = ["PodManager", "Settings"]
