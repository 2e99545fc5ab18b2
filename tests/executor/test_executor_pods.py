"""The dev executor against the real local control plane: pods bound to its node run as
local processes, and their status reads as a kubelet's would."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.executor import ExecutorProcess

pytestmark = pytest.mark.integration

CANARY = "sk-canary-" + "7f3a9c" * 4  # a secret value that must reach the process only


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    """A failure bound, not a performance claim."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def pod_body(
    name: str,
    script: str,
    executor: ExecutorProcess | None,
    *,
    env: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    tolerate: bool = True,
    grace: int | None = None,
    init: list[dict[str, Any]] | None = None,
    **container: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [shell("agent", script, env=env, mounts=mounts, **container)],
        "volumes": volumes or [],
    }
    if init:
        spec["initContainers"] = init
    if executor is not None:
        spec["nodeSelector"] = executor.node_selector
        if tolerate:
            spec["tolerations"] = executor.tolerations
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def shell(
    name: str,
    script: str,
    *,
    env: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    **container: Any,
) -> dict[str, Any]:
    """A container running `script` with sh."""
    return {
        "name": name,
        "image": "headroom-agent:test",
        "command": ["sh", "-c", script],
        "env": env or [],
        "volumeMounts": mounts or [],
        **container,
    }


class Pods:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.ns = namespace

    def create(self, body: dict[str, Any]) -> client.V1Pod:
        return self.core.create_namespaced_pod(self.ns, body)

    def get(self, name: str) -> client.V1Pod | None:
        try:
            return self.core.read_namespaced_pod(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def wait(self, name: str, phase: str, timeout: float = 60) -> client.V1Pod:
        return wait_for(
            f"pod {name} {phase}",
            lambda: (p := self.get(name)) is not None and p.status.phase == phase and p,
            timeout,
        )

    def finished(self, name: str, timeout: float = 60) -> client.V1Pod:
        return wait_for(
            f"pod {name} finished",
            lambda: (
                (p := self.get(name)) is not None
                and p.status.phase in ("Succeeded", "Failed")
                and p
            ),
            timeout,
        )

    def running(self, name: str) -> client.V1Pod:
        def probe() -> client.V1Pod | None:
            pod = self.get(name)
            states = (pod.status.container_statuses or []) if pod else []
            return pod if states and states[0].state.running else None

        return wait_for(f"pod {name} running", probe)

    def events(self, name: str) -> list[client.CoreV1Event]:
        selector = f"involvedObject.name={name}"
        return list(self.core.list_namespaced_event(self.ns, field_selector=selector).items)

    def claim(self, name: str) -> client.V1PersistentVolumeClaim:
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        self.core.create_namespaced_persistent_volume_claim(self.ns, body)
        return wait_for(
            f"claim {name} bound",
            lambda: (c := self.core.read_namespaced_persistent_volume_claim(name, self.ns))
            .status.phase == "Bound" and c,
        )  # fmt: skip

    def claim_dir(self, name: str) -> Path:
        claim = self.core.read_namespaced_persistent_volume_claim(name, self.ns)
        volume = self.core.read_persistent_volume(claim.spec.volume_name)
        return Path(volume.spec.host_path.path)


def wait_pid(directory: Path) -> int:
    """The pid a pod's shell wrote into its claim."""

    def probe() -> int | None:
        try:
            text = (directory / "pid").read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") and text.strip().isdigit() else None

    return int(wait_for("pid file", probe))


def alive(pid: int) -> bool:
    """Running, not merely a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def container_state(pod: client.V1Pod) -> Any:
    return pod.status.container_statuses[0].state


def conditions(pod: client.V1Pod) -> dict[str, tuple[str, str | None]]:
    return {c.type: (c.status, c.reason) for c in pod.status.conditions or []}


def workspace(claim: str = "ws") -> dict[str, Any]:
    return {"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}


@pytest.fixture
def pods(k8s: client.ApiClient, namespace: str) -> Pods:
    return Pods(k8s, namespace)


def test_exit_code_and_termination_message_as_a_kubelet_reports_them(
    pods: Pods, executor: ExecutorProcess
) -> None:
    # 4500 bytes then END: the kubelet keeps the last 4096 bytes of the file.
    script = "head -c 4500 /dev/zero | tr '\\0' a > \"$HEADROOM_TERMINATION_LOG\"; " \
             "printf END >> \"$HEADROOM_TERMINATION_LOG\"; exit 3"  # fmt: skip
    pods.create(pod_body("exit3", script, executor))
    pod = pods.finished("exit3")
    term = container_state(pod).terminated
    assert pod.status.phase == "Failed"
    assert (term.exit_code, term.reason) == (3, "Error")
    assert term.message == "a" * 4093 + "END"
    assert term.started_at <= term.finished_at
    assert term.container_id.startswith("headroom-executor://")
    assert pod.spec.node_name == executor.node_name
    assert pod.status.pod_ip == "127.0.0.1"
    assert conditions(pod)["Ready"] == ("False", "PodFailed")
    assert conditions(pod)["ContainersReady"] == ("False", "PodFailed")
    assert conditions(pod)["PodScheduled"][0] == "True"
    assert not pod.status.container_statuses[0].ready


def test_env_from_secret_config_map_and_downward_api_reaches_the_process(
    pods: Pods, executor: ExecutorProcess
) -> None:
    pods.core.create_namespaced_secret(
        pods.ns, {"metadata": {"name": "creds"}, "stringData": {"token": CANARY}}
    )
    pods.core.create_namespaced_config_map(
        pods.ns, {"metadata": {"name": "cfg"}, "data": {"model": "claude-sonnet"}}
    )
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "model"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "$(POD)@$(NS)"},
    ]
    # The secret itself never goes into status: the process reports its digest.
    script = (
        'printf "%s|%s|%s|%s" "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" "$MODEL" '
        '"$GREETING" "${PYTEST_CURRENT_TEST:-not-inherited}" > "$HEADROOM_TERMINATION_LOG"'
    )
    pods.create(pod_body("env", script, executor, env=env))
    pod = pods.finished("env")
    term = container_state(pod).terminated
    assert pod.status.phase == "Succeeded" and term.reason == "Completed" and term.exit_code == 0
    digest, model, greeting, inherited = term.message.split("|")
    assert digest == hashlib.sha256(CANARY.encode()).hexdigest()
    assert model == "claude-sonnet"
    assert greeting == f"env@{pods.ns}"
    assert inherited == "not-inherited"  # the executor's own environment stays out
    assert CANARY not in executor.log_text()


def test_claim_outlives_pod_and_nested_subpath_mount_is_not_a_symlink(
    pods: Pods, executor: ExecutorProcess
) -> None:
    pods.claim("ws")
    env = [{"name": "CLAUDE_CONFIG_DIR", "value": "/var/lib/headroom/claude"}]
    mounts = [
        {"name": "workspace", "mountPath": "/workspace"},
        {"name": "config", "mountPath": "/var/lib/headroom/claude"},
        {"name": "workspace", "mountPath": "/var/lib/headroom/claude/projects",
         "subPath": ".claude-projects"},
    ]  # fmt: skip
    volumes = [workspace(), {"name": "config", "emptyDir": {}}]
    write = (
        "echo first-pod > note; mkdir -p $CLAUDE_CONFIG_DIR/projects/-workspace; "
        "echo '{}' > $CLAUDE_CONFIG_DIR/projects/-workspace/s1.jsonl; "
        "if [ -L $CLAUDE_CONFIG_DIR/projects ]; then r=symlink; else r=mount; fi; "
        'printf %s "$r" > "$HEADROOM_TERMINATION_LOG"'
    )
    read = (
        'printf "%s|%s" "$(cat note)" "$(ls $CLAUDE_CONFIG_DIR/projects/-workspace)" '
        '> "$HEADROOM_TERMINATION_LOG"'
    )
    common = {"env": env, "mounts": mounts, "volumes": volumes, "workingDir": "/workspace"}
    pods.create(pod_body("writer", write, executor, **common))
    first = pods.finished("writer")
    assert first.status.phase == "Succeeded", container_state(first).terminated
    assert container_state(first).terminated.message == "mount"
    pods.create(pod_body("reader", read, executor, **common))
    second = pods.finished("reader")
    assert container_state(second).terminated.message == "first-pod|s1.jsonl"
    local = pods.claim_dir("ws")
    assert (local / "note").read_text() == "first-pod\n"
    assert (local / ".claude-projects" / "-workspace" / "s1.jsonl").exists()


def test_deleting_a_running_pod_sends_sigterm_and_the_pod_disappears(
    pods: Pods, executor: ExecutorProcess
) -> None:
    pods.claim("ws")
    script = (
        'echo $$$$ > "$W/pid"; trap \'echo TERM > "$W/signal"; exit 0\' TERM; '
        "while true; do sleep 0.1; done"
    )
    env = [{"name": "W", "value": "/workspace"}]
    mounts = [{"name": "workspace", "mountPath": "/workspace"}]
    body = pod_body("sleeper", script, executor, env=env, mounts=mounts, volumes=[workspace()])
    pods.create(body)
    pod = pods.running("sleeper")
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].ready is True
    assert conditions(pod)["Ready"][0] == "True"
    assert conditions(pod)["ContainersReady"][0] == "True"
    local = pods.claim_dir("ws")
    pid = wait_pid(local)
    assert alive(pid)
    pods.core.delete_namespaced_pod("sleeper", pods.ns)
    wait_for("pod object gone", lambda: pods.get("sleeper") is None)
    assert (local / "signal").read_text() == "TERM\n"
    assert not alive(pid)


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    pods: Pods, executor: ExecutorProcess
) -> None:
    pods.claim("ws")
    script = 'echo $$$$ > "$W/pid"; trap "" TERM; while true; do sleep 0.1; done'
    env = [{"name": "W", "value": "/workspace"}]
    mounts = [{"name": "workspace", "mountPath": "/workspace"}]
    pods.create(
        pod_body(
            "stubborn", script, executor, env=env, mounts=mounts, volumes=[workspace()], grace=2
        )
    )
    pods.running("stubborn")
    local = pods.claim_dir("ws")
    pid = wait_pid(local)
    assert alive(pid)
    pods.core.delete_namespaced_pod("stubborn", pods.ns)
    wait_for("pod object gone", lambda: pods.get("stubborn") is None)
    assert not alive(pid)


def test_a_missing_secret_holds_the_pod_pending_until_it_exists(
    pods: Pods, executor: ExecutorProcess
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    pods.create(pod_body("patient", 'test -n "$TOKEN"', executor, env=env))

    def waiting() -> Any:
        pod = pods.get("patient")
        states = (pod.status.container_statuses or []) if pod else []
        return states and states[0].state.waiting and pod

    pod = wait_for("CreateContainerConfigError", waiting)
    assert pod.status.phase == "Pending"
    assert container_state(pod).waiting.reason == "CreateContainerConfigError"
    assert 'secret "later" not found' in container_state(pod).waiting.message  # kubelet's words
    value = base64.b64encode(b"now").decode()
    pods.core.create_namespaced_secret(
        pods.ns, {"metadata": {"name": "later"}, "data": {"token": value}}
    )
    assert pods.finished("patient").status.phase == "Succeeded"


def test_an_unknown_command_is_a_start_error(pods: Pods, executor: ExecutorProcess) -> None:
    body = pod_body("nocmd", "", executor)
    body["spec"]["containers"][0]["command"] = ["no-such-command-here"]
    pods.create(body)
    term = container_state(pods.finished("nocmd")).terminated
    assert (term.exit_code, term.reason) == (128, "StartError")
    assert "no-such-command-here" in term.message


def test_kwok_nodes_keep_plain_pods_and_the_executor_gets_only_tolerating_ones(
    pods: Pods, executor: ExecutorProcess
) -> None:
    pods.create(pod_body("plain", "exit 0", None))
    plain = pods.wait("plain", "Running")  # kwok's simulated Running: nothing executes
    assert plain.spec.node_name.startswith("kwok-node-")
    assert not (plain.status.container_statuses[0].container_id or "").startswith(
        "headroom-executor://"
    )
    pods.create(pod_body("intolerant", "exit 0", executor, tolerate=False))
    unschedulable = wait_for(
        "intolerant pod unschedulable",
        lambda: (
            (p := pods.get("intolerant")) is not None
            and conditions(p).get("PodScheduled") == ("False", "Unschedulable")
            and p
        ),
    )
    assert unschedulable.spec.node_name is None
    pods.create(pod_body("tolerant", "exit 0", executor))
    tolerant = pods.finished("tolerant")
    assert tolerant.spec.node_name == executor.node_name
    assert tolerant.status.phase == "Succeeded"
    assert tolerant.status.container_statuses[0].container_id.startswith("headroom-executor://")


def test_provisioner_binds_a_claim_and_deletes_the_released_volume(
    pods: Pods, executor: ExecutorProcess
) -> None:
    sc = client.StorageV1Api(pods.core.api_client).read_storage_class("headroom-local")
    assert sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc.provisioner, sc.volume_binding_mode) == ("headroom.dev/local", "Immediate")
    claim = pods.claim("data")
    assert claim.spec.storage_class_name == "headroom-local"  # the default class, assigned
    volume = pods.core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.claim_ref.uid == claim.metadata.uid
    assert volume.spec.persistent_volume_reclaim_policy == "Delete"
    local = Path(volume.spec.host_path.path)
    assert local.is_dir() and local.name == claim.metadata.uid
    # never inside a git checkout: the agent would take that repository for its workspace's
    assert not any((parent / ".git").exists() for parent in local.parents)
    pods.core.delete_namespaced_persistent_volume_claim("data", pods.ns)

    def volume_gone() -> bool:
        try:
            pods.core.read_persistent_volume(volume.metadata.name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for("released volume deleted", volume_gone)
    assert not local.exists()


def test_restarted_executor_fails_pods_whose_process_it_lost(
    pods: Pods, kubeconfig: Path, tmp_path: Path, volume_provisioner: Any
) -> None:
    own = ExecutorProcess(kubeconfig, tmp_path / "executor", state_dir=tmp_path / "state")
    own.start()
    try:
        pods.claim("ws")
        script = 'echo $$$$ > "$W/pid"; while true; do sleep 0.1; done'
        env = [{"name": "W", "value": "/workspace"}]
        mounts = [{"name": "workspace", "mountPath": "/workspace"}]
        common = {"env": env, "mounts": mounts, "volumes": [workspace()]}
        pods.create(pod_body("orphan", script, own, **common))
        pods.running("orphan")
        local = pods.claim_dir("ws")
        pid = wait_pid(local)
        own.kill()  # a crash: the pod's process outlives it
        assert alive(pid)
        own.start()
        pod = pods.finished("orphan")
        term = container_state(pod).terminated
        assert pod.status.phase == "Failed"
        assert (term.reason, term.exit_code) == ("ExecutorRestarted", 137)
        wait_for("orphaned process killed", lambda: not alive(pid))

        # A graceful stop ends running pods as a kubelet's graceful node shutdown does.
        (local / "pid").unlink()
        pods.create(pod_body("survivor", script, own, **common))
        pods.running("survivor")
        survivor = wait_pid(local)
        own.stop()
        stopped = pods.finished("survivor")
        assert stopped.status.phase == "Failed"
        assert stopped.status.reason == "Terminated"
        assert container_state(stopped).terminated.exit_code == 143
        assert not alive(survivor)
    finally:
        own.stop()


def init_statuses(pod: client.V1Pod) -> dict[str, Any]:
    return {s.name: s for s in pod.status.init_container_statuses or []}


def test_init_containers_run_in_order_before_the_main_container_sharing_its_volumes(
    pods: Pods, executor: ExecutorProcess, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir(mode=0o777)
    volumes = [{"name": "shared", "emptyDir": {}},
               {"name": "gate", "hostPath": {"path": str(gate)}}]  # fmt: skip
    mounts = [{"name": "shared", "mountPath": "/shared"}, {"name": "gate", "mountPath": "/gate"}]
    env = [{"name": "SHARED", "value": "/shared"}, {"name": "GATE", "value": "/gate"}]
    first = shell(
        "first",
        'until [ -e "$GATE/go" ]; do sleep 0.1; done; echo from-first > note; '
        'printf first-done > "$HEADROOM_TERMINATION_LOG"',
        env=[*env, {"name": "ONLY_FIRST", "value": "yes"}], mounts=mounts, workingDir="/shared",
    )  # fmt: skip
    second = shell(
        "second",
        'echo "from-second ${ONLY_FIRST:-unset}" >> "$SHARED/note"; '
        'printf second-done > "$HEADROOM_TERMINATION_LOG"',
        env=env, mounts=mounts,
    )  # fmt: skip
    main = 'tr "\\n" "|" < "$SHARED/note" > "$HEADROOM_TERMINATION_LOG"'
    pods.create(pod_body("init", main, executor, env=env, mounts=mounts, volumes=volumes,
                         init=[first, second]))  # fmt: skip

    def first_running() -> Any:
        pod = pods.get("init")
        state = init_statuses(pod).get("first") if pod else None
        return state is not None and state.state.running and pod

    pod = wait_for("first init container running", first_running)
    assert pod.status.phase == "Pending"
    running, waiting = init_statuses(pod)["first"], init_statuses(pod)["second"]
    assert (running.started, running.ready) == (True, False)
    assert running.container_id.startswith("headroom-executor://")
    assert waiting.state.waiting.reason == "PodInitializing"
    assert container_state(pod).waiting.reason == "PodInitializing"
    assert conditions(pod)["Initialized"] == ("False", "ContainersNotInitialized")
    assert conditions(pod)["Ready"] == ("False", "ContainersNotReady")
    (gate / "go").touch()

    pod = pods.finished("init")
    assert pod.status.phase == "Succeeded", pod.status
    assert container_state(pod).terminated.message == "from-first|from-second unset|"
    for name, message in (("first", "first-done"), ("second", "second-done")):
        done = init_statuses(pod)[name]
        term = done.state.terminated
        assert (term.exit_code, term.reason, term.message) == (0, "Completed", message)
        assert (done.ready, done.started) == (True, False)
        assert term.started_at <= term.finished_at <= container_state(pod).terminated.started_at
    assert conditions(pod)["Initialized"] == ("True", "PodCompleted")
    assert executor.container_log(pod.metadata.uid) == ""  # each container has its own log
    assert executor.pod_dir(pod.metadata.uid).exists()


def test_a_failing_init_container_fails_the_pod_before_the_main_container_starts(
    pods: Pods, executor: ExecutorProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.mkdir(mode=0o777)
    volumes = [{"name": "marker", "hostPath": {"path": str(marker)}}]
    mounts = [{"name": "marker", "mountPath": "/marker"}]
    env = [{"name": "M", "value": "/marker"}]
    clone = shell(
        "clone",
        'echo cloning; printf "RepoCloneFailed: no such repository" > "$HEADROOM_TERMINATION_LOG";'
        " exit 1",
    )
    pods.create(pod_body("badinit", 'touch "$M/started"', executor, env=env, mounts=mounts,
                         volumes=volumes, init=[clone]))  # fmt: skip
    pod = pods.finished("badinit")
    assert pod.status.phase == "Failed"
    failed = init_statuses(pod)["clone"]
    term = failed.state.terminated
    assert (term.exit_code, term.reason) == (1, "Error")
    assert term.message == "RepoCloneFailed: no such repository"
    assert term.started_at <= term.finished_at
    assert (failed.ready, failed.started) == (False, False)
    assert container_state(pod).waiting.reason == "PodInitializing"
    assert not pod.status.container_statuses[0].ready
    assert conditions(pod)["Initialized"] == ("False", "ContainersNotInitialized")
    assert conditions(pod)["Ready"] == ("False", "PodFailed")
    assert conditions(pod)["ContainersReady"] == ("False", "PodFailed")
    assert not (marker / "started").exists()  # the main container never ran
    init_log = executor.container_log(pod.metadata.uid, init_container="clone")
    assert init_log == "cloning\n"


def test_active_deadline_stops_the_pod_as_deadline_exceeded(
    pods: Pods, executor: ExecutorProcess
) -> None:
    forever = "while true; do sleep 0.1; done"
    body = pod_body("late-main", forever, executor, grace=2)
    body["spec"]["activeDeadlineSeconds"] = 3
    pods.create(body)
    body = pod_body("late-init", "exit 0", executor, grace=2, init=[shell("stuck", forever)])
    body["spec"]["activeDeadlineSeconds"] = 3
    pods.create(body)

    failed = pods.finished("late-main", timeout=30)
    # As a kubelet: Failed at once, while the container is still being stopped.
    assert (failed.status.phase, failed.status.reason) == ("Failed", "DeadlineExceeded")

    def stopped(name: str, init: str | None = None) -> Any:
        pod = pods.get(name)
        if pod is None:
            return None
        status = init_statuses(pod)[init] if init else pod.status.container_statuses[0]
        return status.state.terminated and pod

    main = wait_for("late-main stopped", lambda: stopped("late-main"))
    assert (main.status.phase, main.status.reason) == ("Failed", "DeadlineExceeded")
    assert main.status.message == "Pod was active on the node longer than the specified deadline"
    term = container_state(main).terminated
    assert (term.exit_code, term.reason) == (143, "Error")  # SIGTERM, within the grace period
    assert (term.finished_at - main.status.start_time).total_seconds() >= 3
    assert conditions(main)["Ready"] == ("False", "PodFailed")
    events = {e.reason: e for e in pods.events("late-main")}
    assert events["DeadlineExceeded"].source.component == "kubelet"
    assert events["Killing"].message == "Stopping container agent"

    init = wait_for("late-init stopped", lambda: stopped("late-init", "stuck"))
    assert (init.status.phase, init.status.reason) == ("Failed", "DeadlineExceeded")
    assert init_statuses(init)["stuck"].state.terminated.exit_code == 143
    assert container_state(init).waiting.reason == "PodInitializing"


def test_volumes_with_items_optional_sources_and_env_from(
    pods: Pods, executor: ExecutorProcess
) -> None:
    secret = {"metadata": {"name": "git"}, "stringData": {"token": "t0k", "unused": "x"}}
    pods.core.create_namespaced_secret(pods.ns, secret)
    config = {"metadata": {"name": "cfg"}, "data": {"settings.json": "{}", "model": "m"}}
    pods.core.create_namespaced_config_map(pods.ns, config)
    volumes = [
        {"name": "git", "secret": {"secretName": "git", "defaultMode": 0o400,
                                   "items": [{"key": "token", "path": "creds/token"}]}},
        {"name": "cfg", "configMap": {"name": "cfg", "items": [
            {"key": "settings.json", "path": "s.json", "mode": 0o600},
            {"key": "absent", "path": "never"}], "optional": True}},
        {"name": "nothing", "configMap": {"name": "no-such-map", "optional": True}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}},
    ]  # fmt: skip
    mounts = [
        {"name": "git", "mountPath": "/var/run/headroom/git/0", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "nothing", "mountPath": "/etc/nothing"},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    env = [
        {"name": "GIT", "value": "/var/run/headroom/git/0"},
        # no volume at the parent: it exists only to hold the mount, as in a container
        {"name": "GITROOT", "value": "/var/run/headroom/git"},
        {"name": "CFG", "value": "/etc/cfg"},
        {"name": "NOTHING", "value": "/etc/nothing"},
        {"name": "SCRATCH", "value": "/scratch"},
        # JSON, as the operator's HEADROOM_REPOS: its container paths are translated too
        {"name": "REPOS", "value": json.dumps(
            [{"path": "/scratch/repo", "file": "/var/run/headroom/git/0/creds/token"}])},
    ]  # fmt: skip
    env_from = [
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
        {"secretRef": {"name": "no-such-secret", "optional": True}},
    ]
    script = (
        'r() { (cd "$1" && find . -type f | sort | tr "\\n" " "); }; '
        'test "$(cat "$GITROOT/0/creds/token")" = t0k || exit 7; '
        'case "$REPOS" in *"$SCRATCH/repo"*"$GIT/creds/token"*) repos=local;; '
        "*) repos=$REPOS;; esac; "
        'printf "%s|%s|%s|%s|%s|%s|%s|%s" "$(r "$GIT")" "$(cat "$GIT/creds/token")" '
        '"$(stat -c %a "$GIT/creds/token")" "$(r "$CFG")" "$(stat -c %a "$CFG/s.json")" '
        '"$(r "$NOTHING")" "$CFG_model" "$repos" > "$HEADROOM_TERMINATION_LOG"'
    )
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
    pods.create(pod_body("items", script, executor, env=env, mounts=mounts, volumes=volumes,
                         envFrom=env_from, resources=resources))  # fmt: skip
    pod = pods.finished("items")
    term = container_state(pod).terminated
    assert pod.status.phase == "Succeeded", term
    files, token, token_mode, cfg, cfg_mode, nothing, model, repos = term.message.split("|")
    assert (files, token, token_mode) == ("./creds/token ", "t0k", "400")  # only its item
    assert (cfg, cfg_mode) == ("./s.json ", "600")  # the optional missing key: no file
    assert nothing == ""  # an optional missing ConfigMap: an empty volume
    assert (model, repos) == ("m", "local")


def test_a_missing_secret_volume_waits_with_a_failed_mount_event(
    pods: Pods, executor: ExecutorProcess
) -> None:
    volumes = [{"name": "creds", "secret": {"secretName": "later"}}]
    mounts = [{"name": "creds", "mountPath": "/creds"}]
    env = [{"name": "C", "value": "/creds"}]
    pods.create(pod_body("mount", 'test "$(cat "$C/k")" = v', executor, env=env, mounts=mounts,
                         volumes=volumes))  # fmt: skip
    failed_mount = wait_for(
        "FailedMount event", lambda: [e for e in pods.events("mount") if e.reason == "FailedMount"]
    )
    assert failed_mount[0].type == "Warning"
    assert failed_mount[0].message == 'MountVolume.SetUp failed for volume "creds" : ' \
                                      'secret "later" not found'  # fmt: skip
    pod = pods.get("mount")
    assert pod is not None and pod.status.phase == "Pending"
    assert container_state(pod).waiting.reason == "ContainerCreating"  # as a kubelet shows it
    pods.core.create_namespaced_secret(
        pods.ns, {"metadata": {"name": "later"}, "stringData": {"k": "v"}}
    )
    assert pods.finished("mount").status.phase == "Succeeded"
