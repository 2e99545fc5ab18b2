"""Pods bound to the executor's node, each run as one local process.

One worker thread per running pod: resolve env and volumes (retrying while a Secret or
claim is missing, as a kubelet does), start the container's command, report Running, wait,
read the termination message, report the terminated state. Deletion sends SIGTERM to the
process, SIGKILL after the grace period, reports, then confirms with a grace-0 delete.
State lives under <state-dir>/pods/<pod-uid>/ (container.log, termination-log,
process.json), so a restarted executor knows which pods it had started."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headroom.executor import status
from headroom.executor.envvars import ConfigError, decode_secret, expand, resolve
from headroom.executor.kube import SMP, ApiException, Kube, log
from headroom.executor.volumes import Layout, prepare

JSON = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
RETRY_SECONDS = 2.0
MIN_GRACE = 2  # kubelet's minimum when a pod is deleted with grace 0
SHUTDOWN_GRACE = 10


class StartError(Exception):
    """The container cannot be started at all (kubelet: StartError, exit code 128)."""


@dataclass
class Settings:
    node: str
    state_dir: Path
    ip: str = "127.0.0.1"
    search_path: list[str] = field(default_factory=list)  # where command[0] is looked up
    pass_env: dict[str, str] = field(default_factory=dict)
    can_bind: bool = True  # else nested mounts fall back to symlinks (see docs/executor.md)


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


def process_alive(pid: int, start_ticks: str) -> bool:
    """Still the same process, not a recycled pid?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[19] == start_ticks


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
            if uid in self.done or pod_status.get("phase") in TERMINAL:
                if deleting:
                    self.finalize(pod)
                return
            states = [c.get("state") or {} for c in pod_status.get("containerStatuses") or []]
            started = any("running" in s or "terminated" in s for s in states)
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
        running: JSON = next(
            (c["state"]["running"] for c in (pod.get("status") or {}).get("containerStatuses") or []
             if "running" in (c.get("state") or {})), {},
        )  # fmt: skip
        started_at = (record or {}).get("startedAt") or running.get("startedAt")
        log.warning("pod %s/%s: its process is unknown after an executor restart",
                    pod["metadata"]["namespace"], pod["metadata"]["name"])  # fmt: skip
        self.report(
            pod,
            status.terminated(
                pod, self.settings.ip, code=137, reason="ExecutorRestarted",
                message="the headroom dev executor restarted while this container ran; "
                "its process was stopped and its exit status is unknown",
                started_at=started_at, cid=(record or {}).get("containerID"),
            ),
        )  # fmt: skip

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


class PodWorker(threading.Thread):
    def __init__(self, manager: PodManager, pod: JSON) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.manager = manager
        self.settings = manager.settings
        self.pod = pod
        self.dir = manager.pod_dir(pod)
        self.changed = threading.Event()
        self.gone = False  # the pod object no longer exists
        self.stopping = False  # the executor shuts down
        self.pid: int | None = None

    @property
    def label(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def deleting(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    def update(self, pod: JSON) -> None:
        self.pod = pod
        self.changed.set()

    def vanish(self) -> None:
        self.gone = True
        self.changed.set()

    def report(self, patch: JSON) -> None:
        if not self.gone and not self.manager.report(self.pod, patch):
            self.gone = True

    def run(self) -> None:
        try:
            self.lifecycle()
        except Exception as exc:
            log.exception("pod %s: executor failure", self.label)
            if self.pid is not None:  # never leave a process nobody supervises
                self.kill_group(self.pid)
            self.report(self.terminated(128, "StartError", f"headroom executor: {exc}"))
        finally:
            self.manager.worker_done(self)

    def terminated(self, code: int, reason: str, message: str, **kw: Any) -> JSON:
        return status.terminated(
            self.pod, self.settings.ip, code=code, reason=reason, message=message,
            started_at=kw.get("started_at"), cid=kw.get("cid"),
            node_shutdown=kw.get("node_shutdown", False),
        )  # fmt: skip

    def lifecycle(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.pod["metadata"]
        (self.dir / "pod").write_text(f"{meta['namespace']}/{meta['name']}\n")
        spec = self.pod["spec"]
        if len(spec["containers"]) != 1 or spec.get("initContainers"):
            msg = "the headroom dev executor runs pods of exactly one container, no init containers"
            self.report(self.terminated(128, "StartError", msg))
            return
        self.report(status.waiting(self.pod, self.settings.ip, "ContainerCreating"))
        ready = self.prepare()
        if ready is None:
            return
        env, layout = ready
        try:
            try:
                proc, cid, started_at = self.launch(env, layout)
            except StartError as exc:
                log.warning("pod %s: %s", self.label, exc)
                self.report(self.terminated(128, "StartError", str(exc)))
                return
            log.info("pod %s: started pid %s", self.label, proc.pid)
            self.report(status.running(self.pod, self.settings.ip, started_at, cid))
            returncode = self.supervise(proc)
            code = status.exit_code(returncode)
            container = spec["containers"][0]
            message = status.termination_message(
                str(layout.message_file), str(self.dir / "container.log"),
                container.get("terminationMessagePolicy", "File"), failed=code != 0,
            )  # fmt: skip
            log.info("pod %s: exited %s%s (log: %s)", self.label, code,
                     f" by {status.signal_name(returncode)}" if returncode < 0 else "",
                     self.dir / "container.log")  # fmt: skip
            self.report(
                self.terminated(
                    code, "Completed" if code == 0 else "Error", message,
                    started_at=started_at, cid=cid,
                    node_shutdown=self.stopping and not self.deleting,
                )
            )  # fmt: skip
        finally:
            for path in layout.scratch:
                shutil.rmtree(path, ignore_errors=True)

    def prepare(self) -> tuple[dict[str, str], Layout] | None:
        """Env and volumes; retried while something the pod names is missing."""
        reported = ""
        container = self.pod["spec"]["containers"][0]
        while not (self.deleting or self.stopping):
            try:
                env = resolve(container, self.pod, self.manager.sources.text, self.settings.ip)
                layout = prepare(self.pod, self.dir, self.manager.sources, env, self.settings.ip)
                return env, layout
            except ConfigError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    log.info("pod %s: waiting: %s", self.label, exc)
                    reason = "CreateContainerConfigError"
                    self.report(status.waiting(self.pod, self.settings.ip, reason, str(exc)))
                self.changed.wait(RETRY_SECONDS)
                self.changed.clear()
        return None

    def environment(self, env: dict[str, str], layout: Layout) -> dict[str, str]:
        """What the process sees: no variable of the executor's own environment (a container
        does not inherit the kubelet's), container paths rewritten to local ones."""
        final = {
            "PATH": os.pathsep.join(self.settings.search_path),
            "HOSTNAME": self.pod["metadata"]["name"],
            **self.settings.pass_env,
        }
        final.update({k: layout.paths.translate(v) for k, v in env.items()})
        if "HOME" not in final:
            (self.dir / "home").mkdir(exist_ok=True)
            final["HOME"] = str(self.dir / "home")
        tmp = layout.paths.local("/tmp")
        if tmp is not None and "TMPDIR" not in final:
            final["TMPDIR"] = str(tmp)
        final["HEADROOM_TERMINATION_LOG"] = str(layout.message_file)
        return final

    def launch(
        self, env: dict[str, str], layout: Layout
    ) -> tuple[subprocess.Popen[bytes], str, str]:
        container = self.pod["spec"]["containers"][0]
        final = self.environment(env, layout)
        command = container.get("command") or []
        if not command:
            raise StartError("the dev executor cannot run an image's entrypoint: set `command`")
        argv = [expand(a, final) for a in [*command, *(container.get("args") or [])]]
        found = shutil.which(argv[0], path=final["PATH"]) if "/" not in argv[0] else argv[0]
        if not found or not os.access(found, os.X_OK):
            raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
        argv[0] = found
        cwd = self.dir
        if container.get("workingDir"):
            local = layout.paths.local(container["workingDir"])
            if local is None:
                raise StartError(
                    f"workingDir {container['workingDir']} is in no volume mount: the executor "
                    "has no image filesystem to create it in"
                )
            local.mkdir(parents=True, exist_ok=True)
            cwd = local
        argv = self.with_nested_mounts(argv, layout)
        log_file = (self.dir / "container.log").open("ab")
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=final, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise StartError(f"exec {argv[0]}: {exc.strerror}") from exc
        finally:
            log_file.close()
        self.pid = proc.pid
        started_at = status.timestamp()
        cid = f"{self.pod['metadata']['uid'][:8]}-{proc.pid}"
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        record = {
            "pid": proc.pid,
            "startTicks": stat.rsplit(")", 1)[1].split()[19],
            "startedAt": started_at,
            "containerID": cid,
        }
        (self.dir / "process.json").write_text(json.dumps(record))
        return proc, cid, started_at

    def with_nested_mounts(self, argv: list[str], layout: Layout) -> list[str]:
        """A mount inside another mount (a PVC subPath at <config emptyDir>/projects) is a
        bind mount in the process's own mount namespace; without the privilege for that, a
        symlink stands in for it (an executor-only emulation, see docs/executor.md)."""
        if not layout.binds:
            return argv
        pairs: list[str] = []
        for bind in layout.binds:
            if self.settings.can_bind:
                if bind.source.is_dir():
                    bind.target.mkdir(parents=True, exist_ok=True)
                pairs += [str(bind.source), str(bind.target)]
            else:
                if bind.target.is_dir() and not any(bind.target.iterdir()):
                    bind.target.rmdir()
                bind.target.parent.mkdir(parents=True, exist_ok=True)
                bind.target.symlink_to(bind.source, target_is_directory=bind.source.is_dir())
        if not pairs:
            return argv
        return [sys.executable, "-m", "headroom.executor.bindexec", *pairs, "--", *argv]

    def supervise(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for the process; on deletion or shutdown stop it as a runtime stops a
        container: SIGTERM to its main process, SIGKILL to all of it after the grace."""
        deadline: float | None = None
        while (returncode := proc.poll()) is None:
            if deadline is None and (self.deleting or self.stopping):
                grace = self.grace_seconds()
                log.info("pod %s: stopping (grace %ss)", self.label, grace)
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + grace
            elif deadline is not None and time.monotonic() >= deadline:
                self.kill_group(proc.pid)
            self.changed.wait(0.1)
            self.changed.clear()
        self.kill_group(proc.pid)  # what remains of a container ends with its main process
        return returncode

    def grace_seconds(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if self.gone:
            grace = 0
        if self.stopping and not self.deleting:
            grace = min(grace, SHUTDOWN_GRACE)
        return float(max(grace, MIN_GRACE))

    @staticmethod
    def kill_group(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
