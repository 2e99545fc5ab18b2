"""One pod bound to the executor's node, run by one thread as local processes.

As a kubelet does: the pod's volumes are set up first (retried while a Secret, ConfigMap or
claim they name is missing: the pod keeps waiting, with a FailedMount event); then each init
container runs to completion, one after another, and only then the main container. Every
container gets its own env, mounts, workingDir, log and termination message file, resolved
the same way (retried while something its env names is missing:
CreateContainerConfigError). restartPolicy is treated as Never: a container that fails
ends the pod. Deletion, the executor's shutdown and activeDeadlineSeconds stop the running
process (SIGTERM, SIGKILL after the grace period)."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headroom.contract import pod as pod_contract
from headroom_dev.executor import status
from headroom_dev.executor.envvars import ConfigError, expand, resolve
from headroom_dev.executor.events import NORMAL, WARNING, field_path
from headroom_dev.executor.kube import log
from headroom_dev.executor.status import State
from headroom_dev.executor.volumes import (
    Layout,
    MountError,
    Volumes,
    container_layout,
    prepare_volumes,
)

if TYPE_CHECKING:
    from headroom_dev.executor.pods import PodManager

JSON = dict[str, Any]
RETRY_SECONDS = 2.0
MIN_GRACE = 2  # kubelet's minimum when a pod is deleted with grace 0
SHUTDOWN_GRACE = 10
POLL_SECONDS = 0.1


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


@dataclass(frozen=True)
class Container:
    """A container of the pod and the local directory of its log and termination message
    (the main container's is the pod directory itself, where tests and tools look)."""

    spec: JSON
    init: bool
    dir: Path

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def log_file(self) -> Path:
        return self.dir / "container.log"

    @property
    def message_file(self) -> Path:
        return self.dir / "termination-log"

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def fieldpath(self) -> str:
        return field_path(self.name, self.init)


def unsupported(spec: JSON) -> str | None:
    if len(spec["containers"]) != 1:
        return "the headroom dev executor runs pods of exactly one container (plus init containers)"
    if any(c.get("restartPolicy") for c in spec.get("initContainers") or []):
        return "the headroom dev executor does not run sidecar containers (init restartPolicy)"
    return None


def start_ticks(pid: int) -> str:
    """The process's start time in clock ticks: tells it apart from a later one with its pid."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


class PodWorker(threading.Thread):
    def __init__(self, manager: PodManager, pod: JSON) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.manager = manager
        self.settings = manager.settings
        self.pod = pod
        self.dir = manager.pod_dir(pod)
        self.state = status.initial(pod)
        self.changed = threading.Event()
        self.gone = False  # the pod object no longer exists
        self.stopping = False  # the executor shuts down
        self.expired = False  # activeDeadlineSeconds passed
        self.pid: int | None = None
        self.current: Container | None = None
        self.events: set[tuple[str, str, str | None]] = set()

    @property
    def label(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def deleting(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    def halted(self) -> bool:
        """Nothing more may start: the pod is being deleted, the executor stops, or the
        pod's deadline passed (checked here, so every wait notices it)."""
        return self.check_deadline() or self.deleting or self.stopping

    def update(self, pod: JSON) -> None:
        self.pod = pod
        self.changed.set()

    def vanish(self) -> None:
        self.gone = True
        self.changed.set()

    def publish(self) -> None:
        patch = status.patch(self.pod, self.settings.ip, self.state)
        if not self.gone and not self.manager.report(self.pod, patch):
            self.gone = True

    def event(self, kind: str, reason: str, message: str, c: Container | None = None) -> None:
        """Once per distinct event (a kubelet aggregates repeats into a count instead)."""
        key = (reason, message, c.name if c else None)
        if key not in self.events and not self.gone:
            self.events.add(key)
            self.manager.recorder.record(
                self.pod, kind, reason, message, c.fieldpath if c else None
            )

    def containers(self) -> list[Container]:
        spec = self.pod["spec"]
        inits = [Container(c, True, self.dir / "init" / c["name"])
                 for c in spec.get("initContainers") or []]  # fmt: skip
        return [*inits, *(Container(c, False, self.dir) for c in spec["containers"])]

    def run(self) -> None:
        try:
            self.lifecycle()
        except Exception as exc:
            log.exception("pod %s: executor failure", self.label)
            if self.pid is not None:  # never leave a process nobody supervises
                self.kill_group(self.pid)
            self.fail_start(f"headroom-dev executor: {exc}", self.current)
        finally:
            self.manager.worker_done(self)

    def fail_start(self, message: str, c: Container | None = None) -> None:
        """StartError on `c`, or on the first container to run (which fails the pod)."""
        names = [c.name] if c else list(self.state.init)[:1] or list(self.state.main)
        for name in names:
            self.state.set(name, State.terminated(128, "StartError", message))
        self.publish()

    def lifecycle(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "pod").write_text(f"{self.label}\n")
        refusal = unsupported(self.pod["spec"])
        if refusal:
            self.fail_start(refusal)
            return
        self.publish()
        volumes = self.mount()
        if volumes is None:
            return
        try:
            for container in self.containers():
                if not self.run_container(container, volumes):
                    break
        finally:
            for path in volumes.scratch:
                shutil.rmtree(path, ignore_errors=True)

    def wait_retry(self) -> None:
        """Until the next retry, a change of the pod, or its deadline, whichever is first."""
        timeout = RETRY_SECONDS
        left = self.deadline_left()
        if left is not None:
            timeout = min(timeout, max(left, 0) + POLL_SECONDS)
        self.changed.wait(timeout)
        self.changed.clear()

    def mount(self) -> Volumes | None:
        """The pod's volumes; while one cannot be set up the pod keeps its waiting states
        and a FailedMount event says why, as a kubelet shows it."""
        reported = ""
        while not self.halted():
            try:
                return prepare_volumes(self.pod, self.dir, self.manager.sources, self.settings.ip)
            except MountError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    log.info("pod %s: waiting: %s", self.label, exc)
                    self.event(WARNING, "FailedMount", str(exc))
                self.wait_retry()
        return None

    def configure(self, c: Container, volumes: Volumes) -> tuple[dict[str, str], Layout] | None:
        """The container's env and mounts; retried while something its env names is
        missing."""
        reported = ""
        while not self.halted():
            try:
                env = resolve(c.spec, self.pod, self.manager.sources.text, self.settings.ip)
                return env, container_layout(c.spec, volumes, env, c.message_file, c.rootfs)
            except ConfigError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    log.info("pod %s: %s waiting: %s", self.label, c.name, exc)
                    reason = "CreateContainerConfigError"
                    self.state.set(c.name, State.waiting(reason, str(exc)))
                    self.publish()
                    self.event(WARNING, "Failed", f"Error: {exc}", c)
                self.wait_retry()
        return None

    def run_container(self, c: Container, volumes: Volumes) -> bool:
        """Run one container to its end; True when the next one may start."""
        ready = self.configure(c, volumes)
        if ready is None:
            return False
        env, layout = ready
        self.current = c
        try:
            proc, cid, started_at = self.launch(c, env, layout)
        except StartError as exc:
            log.warning("pod %s: %s: %s", self.label, c.name, exc)
            self.state.set(c.name, State.terminated(128, "StartError", str(exc)))
            self.publish()
            return False
        log.info("pod %s: %s started pid %s", self.label, c.name, proc.pid)
        self.state.set(c.name, State.running(started_at, cid))
        self.publish()
        returncode = self.supervise(proc, c)
        self.finish(c, returncode, started_at, cid)
        return returncode == 0 and not self.halted()

    def finish(self, c: Container, returncode: int, started_at: str, cid: str) -> None:
        code = status.exit_code(returncode)
        policy = c.spec.get("terminationMessagePolicy", "File")
        message = status.termination_message(
            str(c.message_file), str(c.log_file), policy, failed=code != 0
        )
        log.info("pod %s: %s exited %s%s (log: %s)", self.label, c.name, code,
                 f" by {status.signal_name(returncode)}" if returncode < 0 else "",
                 c.log_file)  # fmt: skip
        reason = "Completed" if code == 0 else "Error"
        self.state.set(c.name, State.terminated(code, reason, message,
                                                started_at=started_at, cid=cid))  # fmt: skip
        if self.stopping and not self.deleting and not self.expired:
            # A kubelet's graceful node shutdown fails the pod, whatever the exit code.
            self.state.reason, self.state.message = status.SHUTDOWN_REASON, status.SHUTDOWN_MESSAGE
        self.publish()

    def deadline_left(self) -> float | None:
        """Seconds until activeDeadlineSeconds, counted from the pod's startTime (as the
        kubelet counts it: init containers and waiting included); None without one."""
        seconds = self.pod["spec"].get("activeDeadlineSeconds")
        if seconds is None:
            return None
        end = status.parse_time(self.state.start_time) + timedelta(seconds=int(seconds))
        return (end - datetime.now(UTC)).total_seconds()

    def check_deadline(self) -> bool:
        """Past the deadline the kubelet marks the pod Failed at once, then stops what runs."""
        if self.expired:
            return True
        left = self.deadline_left()
        if left is None or left > 0:
            return False
        self.expired = True
        log.info("pod %s: activeDeadlineSeconds passed", self.label)
        self.state.reason, self.state.message = status.DEADLINE_REASON, status.DEADLINE_MESSAGE
        self.publish()
        self.event(NORMAL, status.DEADLINE_REASON, status.DEADLINE_MESSAGE)
        return True

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
        tmp = layout.paths.local("/tmp", ancestors=False)  # only a volume mounted there
        if tmp is not None and "TMPDIR" not in final:
            final["TMPDIR"] = str(tmp)
        # The runner writes its message where this says: the file read back as the
        # container's terminationMessagePath (no /dev/termination-log on a local process).
        final[pod_contract.TERMINATION_LOG] = str(layout.message_file)
        return final

    def argv(self, c: Container, final: dict[str, str]) -> list[str]:
        command = c.spec.get("command") or []
        if not command:
            raise StartError("the dev executor cannot run an image's entrypoint: set `command`")
        argv = [expand(a, final) for a in [*command, *(c.spec.get("args") or [])]]
        found = shutil.which(argv[0], path=final["PATH"]) if "/" not in argv[0] else argv[0]
        if not found or not os.access(found, os.X_OK):
            raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
        return [found, *argv[1:]]

    def working_dir(self, c: Container, layout: Layout) -> Path:
        if not c.spec.get("workingDir"):
            return self.dir
        local = layout.paths.local(c.spec["workingDir"])
        if local is None:
            raise StartError(
                f"workingDir {c.spec['workingDir']} is in no volume mount: the executor "
                "has no image filesystem to create it in"
            )
        local.mkdir(parents=True, exist_ok=True)
        return local

    def launch(
        self, c: Container, env: dict[str, str], layout: Layout
    ) -> tuple[subprocess.Popen[bytes], str, str]:
        final = self.environment(env, layout)
        cwd = self.working_dir(c, layout)
        # Last: translating env and workingDir decides which directories need binds.
        argv = self.with_nested_mounts(self.argv(c, final), layout)
        c.dir.mkdir(parents=True, exist_ok=True)
        with c.log_file.open("ab") as log_file:
            try:
                proc = subprocess.Popen(
                    argv, cwd=cwd, env=final, stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise StartError(f"exec {argv[0]}: {exc.strerror}") from exc
        self.pid = proc.pid
        started_at = status.timestamp()
        cid = f"{self.pod['metadata']['uid'][:8]}-{proc.pid}"
        record = {
            "pid": proc.pid,
            "startTicks": start_ticks(proc.pid),
            "startedAt": started_at,
            "containerID": cid,
            "container": c.name,
        }
        (self.dir / "process.json").write_text(json.dumps(record))
        return proc, cid, started_at

    def with_nested_mounts(self, argv: list[str], layout: Layout) -> list[str]:
        """A mount inside another mount (a PVC subPath at <config emptyDir>/projects) is a
        bind mount in the process's own mount namespace; without the privilege for that, a
        symlink stands in for it (an executor-only emulation, see docs/executor.md)."""
        binds = layout.all_binds()
        if not binds:
            return argv
        pairs: list[str] = []
        for bind in binds:
            if self.settings.can_bind:
                bind.target.parent.mkdir(parents=True, exist_ok=True)
                if bind.source.is_dir():
                    bind.target.mkdir(exist_ok=True)
                pairs += [str(bind.source), str(bind.target)]
            elif not bind.target.is_symlink():  # an earlier container of the pod made it
                if bind.target.is_dir() and not any(bind.target.iterdir()):
                    bind.target.rmdir()
                bind.target.parent.mkdir(parents=True, exist_ok=True)
                bind.target.symlink_to(bind.source, target_is_directory=bind.source.is_dir())
        if not pairs:
            return argv
        return [sys.executable, "-m", "headroom_dev.executor.bindexec", *pairs, "--", *argv]

    def supervise(self, proc: subprocess.Popen[bytes], c: Container) -> int:
        """Wait for the process; on deletion, shutdown or the deadline stop it as a runtime
        stops a container: SIGTERM to its main process, SIGKILL to all of it after the
        grace period."""
        deadline: float | None = None
        while (returncode := proc.poll()) is None:
            if deadline is None and self.halted():
                grace = self.grace_seconds()
                log.info("pod %s: stopping %s (grace %ss)", self.label, c.name, grace)
                self.event(NORMAL, "Killing", f"Stopping container {c.name}", c)
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + grace
            elif deadline is not None and time.monotonic() >= deadline:
                self.kill_group(proc.pid)
            self.changed.wait(POLL_SECONDS)
            self.changed.clear()
        self.kill_group(proc.pid)  # what remains of a container ends with its main process
        self.pid = None
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
