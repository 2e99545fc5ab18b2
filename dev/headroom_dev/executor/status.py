"""Pod status as a kubelet writes it (pkg/kubelet/status/generate.go, kubelet_pods.go): phase,
conditions, the states of init and regular containers, IPs and times.

A `PodState` holds what the executor knows (each container's `State`, a pod-level failure
reason); `patch()` turns it into the strategic-merge patch for the status subresource.
Everything here is pure. restartPolicy is treated as Never throughout: the executor restarts
nothing, so a failed init container fails the pod. Conditions keep their
lastTransitionTime while their status does not change."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")

# kubelet: MaxContainerTerminationMessageLength; it keeps the *last* 4096 bytes of the file.
MAX_MESSAGE_BYTES = 4 * 1024
# kubelet: FallbackToLogsOnError reads at most 80 lines / 2048 bytes from the end of the log.
MAX_LOG_LINES, MAX_LOG_BYTES = 80, 2 * 1024
CONTAINER_ID_SCHEME = "headroom-executor"
# kubelet's default waiting reasons for a container it has not created yet.
CREATING, INITIALIZING = "ContainerCreating", "PodInitializing"
DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
SHUTDOWN_REASON = "Terminated"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."


def timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def exit_code(returncode: int) -> int:
    """A process killed by signal N reads as 128+N, as container runtimes report it."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return None


def read_tail(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except FileNotFoundError:
        return b""


def termination_message(message_file: str, log_file: str, policy: str, failed: bool) -> str:
    data = read_tail(message_file, MAX_MESSAGE_BYTES)
    if not data and failed and policy == "FallbackToLogsOnError":
        lines = read_tail(log_file, MAX_LOG_BYTES).splitlines(keepends=True)
        data = b"".join(lines[-MAX_LOG_LINES:])
    return data.decode(errors="replace")


@dataclass
class State:
    """One container's state: waiting (reason, message), running or terminated."""

    kind: str  # "waiting" | "running" | "terminated"
    reason: str | None = None
    message: str | None = None
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    cid: str | None = None

    @classmethod
    def waiting(cls, reason: str, message: str | None = None) -> State:
        return cls("waiting", reason, message or None)

    @classmethod
    def running(cls, started_at: str, cid: str | None) -> State:
        return cls("running", started_at=started_at, cid=cid)

    @classmethod
    def terminated(
        cls, code: int, reason: str, message: str | None = None, *,
        started_at: str | None = None, cid: str | None = None,
    ) -> State:  # fmt: skip
        now = timestamp()
        return cls("terminated", reason, message or None, code, started_at or now, now, cid)

    @classmethod
    def parse(cls, state: JSON) -> State:
        """The API form back, for a pod an earlier executor ran."""
        for kind in ("terminated", "running", "waiting"):
            if kind in state:
                s = state[kind] or {}
                cid = str(s.get("containerID") or "").partition("://")[2] or None
                return cls(
                    kind, s.get("reason"), s.get("message"), int(s.get("exitCode") or 0),
                    s.get("startedAt"), s.get("finishedAt"), cid,
                )  # fmt: skip
        return cls.waiting(CREATING)

    @property
    def succeeded(self) -> bool:
        return self.kind == "terminated" and self.exit_code == 0

    @property
    def container_id(self) -> str | None:
        return f"{CONTAINER_ID_SCHEME}://{self.cid}" if self.cid else None

    def api(self) -> JSON:
        if self.kind == "waiting":
            return {"waiting": _present(reason=self.reason, message=self.message)}
        if self.kind == "running":
            return {"running": {"startedAt": self.started_at}}
        return {
            "terminated": _present(
                exitCode=self.exit_code, reason=self.reason, message=self.message,
                startedAt=self.started_at, finishedAt=self.finished_at,
                containerID=self.container_id,
            )
        }  # fmt: skip


def _present(**fields: Any) -> JSON:
    return {k: v for k, v in fields.items() if v is not None}


@dataclass
class PodState:
    """What the executor reports: every container's state, in spec order, and the pod-level
    reason of a failure the kubelet decides itself (DeadlineExceeded, node shutdown)."""

    init: dict[str, State]
    main: dict[str, State]
    start_time: str = field(default_factory=timestamp)
    reason: str | None = None
    message: str | None = None

    def ordered(self) -> Iterable[tuple[str, State]]:
        """Containers in the order they run: init containers, then the regular ones."""
        yield from self.init.items()
        yield from self.main.items()

    def set(self, name: str, state: State) -> None:
        (self.init if name in self.init else self.main)[name] = state


def initial(pod: JSON) -> PodState:
    """Nothing created yet: kubelet's default waiting states (PodInitializing for every
    container of a pod with init containers, ContainerCreating otherwise)."""
    spec = pod["spec"]
    inits = spec.get("initContainers") or []
    default = INITIALIZING if inits else CREATING
    return PodState(
        init={c["name"]: State.waiting(INITIALIZING) for c in inits},
        main={c["name"]: State.waiting(default) for c in spec["containers"]},
        start_time=(pod.get("status") or {}).get("startTime") or timestamp(),
    )


def from_status(pod: JSON) -> PodState:
    """The state a pod's status last showed (containers it does not list: defaults)."""
    state = initial(pod)
    old = pod.get("status") or {}
    for key, group in (("initContainerStatuses", state.init), ("containerStatuses", state.main)):
        for cs in old.get(key) or []:
            if cs.get("name") in group:
                group[cs["name"]] = State.parse(cs.get("state") or {})
    state.reason, state.message = old.get("reason"), old.get("message")
    return state


def phase(state: PodState) -> str:
    """kubelet's getPhase for restartPolicy Never."""
    if state.reason:
        return "Failed"
    inits = list(state.init.values())
    if any(s.kind == "terminated" and not s.succeeded for s in inits):
        return "Failed"
    if not all(s.succeeded for s in inits):
        return "Pending"
    main = list(state.main.values())
    if any(s.kind == "waiting" for s in main):
        return "Pending"
    if any(s.kind == "running" for s in main):
        return "Running"
    return "Succeeded" if all(s.succeeded for s in main) else "Failed"


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # as Go prints a []string


def _initialized(state: PodState, pod_phase: str) -> tuple[bool, str | None, str | None]:
    if pod_phase == "Succeeded":
        return True, "PodCompleted", None
    if any(s.kind != "waiting" for s in state.main.values()):
        return True, None, None  # a regular container has started: initialized before
    incomplete = [name for name, s in state.init.items() if not s.succeeded]
    if incomplete:
        message = f"containers with incomplete status: {_names(incomplete)}"
        return False, "ContainersNotInitialized", message
    return True, None, None


def _containers_ready(state: PodState, pod_phase: str) -> tuple[bool, str | None, str | None]:
    if pod_phase == "Succeeded":
        return False, "PodCompleted", None
    if pod_phase == "Failed":
        return False, "PodFailed", None
    unready = [name for name, s in state.main.items() if s.kind != "running"]
    if unready:
        return False, "ContainersNotReady", f"containers with unready status: {_names(unready)}"
    return True, None, None


def _condition(pod: JSON, kind: str, status: bool, reason: str | None = None,
               message: str | None = None) -> JSON:  # fmt: skip
    value = "True" if status else "False"
    old = next((c for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == kind), None)  # fmt: skip
    since = old["lastTransitionTime"] if old and old.get("status") == value else timestamp()
    return {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": since,
        "observedGeneration": pod["metadata"].get("generation"),
        "reason": reason,
        "message": message,
    }


def conditions(pod: JSON, state: PodState, pod_phase: str) -> list[JSON]:
    running = any(s.kind == "running" for _, s in state.ordered())
    # The "sandbox" is gone once the pod is over and nothing runs in it any more.
    sandbox = pod_phase not in TERMINAL or running
    ready = _containers_ready(state, pod_phase)
    return [
        _condition(pod, "PodReadyToStartContainers", sandbox),
        _condition(pod, "Initialized", *_initialized(state, pod_phase)),
        _condition(pod, "Ready", *ready),
        _condition(pod, "ContainersReady", *ready),
        _condition(pod, "PodScheduled", True),
    ]


def _container(spec: JSON, state: State, *, init: bool) -> JSON:
    """kubelet (prober manager): a container is `started` while it runs; a regular one is
    ready while it runs (no probes here), an init container once it exited 0."""
    status: JSON = {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": state.succeeded if init else state.kind == "running",
        "started": state.kind == "running",
        "restartCount": 0,
        "state": state.api(),
    }
    if state.container_id:
        status["containerID"] = state.container_id
    return status


def patch(pod: JSON, ip: str, state: PodState) -> JSON:
    """The status subresource patch for `state`."""
    spec = pod["spec"]
    pod_phase = phase(state)
    status: JSON = {
        "phase": pod_phase,
        "observedGeneration": pod["metadata"].get("generation"),
        "hostIP": ip,
        "hostIPs": [{"ip": ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": state.start_time,
        "conditions": conditions(pod, state, pod_phase),
        "containerStatuses": [
            _container(c, state.main[c["name"]], init=False) for c in spec["containers"]
        ],
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [
            _container(c, state.init[c["name"]], init=True) for c in spec["initContainers"]
        ]
    if state.reason:
        status["reason"], status["message"] = state.reason, state.message
    return {"status": status}
