"""Pure parts of the executor: $(VAR) expansion, env resolution, path mapping, exit codes,
messages, pod status shapes, volume files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from headroom_dev.executor import status
from headroom_dev.executor.envvars import ConfigError, expand, resolve
from headroom_dev.executor.paths import Bind, Mount, PathMap
from headroom_dev.executor.status import MAX_MESSAGE_BYTES, State, exit_code, termination_message
from headroom_dev.executor.volumes import MountError, prepare_volumes


def test_expand_follows_kubernetes_rules() -> None:
    defined = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", defined) == "1-two"
    assert expand("$(MISSING) stays", defined) == "$(MISSING) stays"
    assert expand("$$(A) is escaped", defined) == "$(A) is escaped"
    assert expand("cost $5 $", defined) == "cost $5 $"
    assert expand("$(A", defined) == "$(A"


def test_resolve_uses_earlier_variables_and_reports_missing_keys() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}
    container = {
        "env": [
            {"name": "X", "value": "x"},
            {"name": "Y", "value": "$(X)/$(Z)"},
            {"name": "Z", "value": "z"},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }
    env = resolve(container, pod, lambda kind, ns, name: {"k": "v"}, "127.0.0.1")
    assert env == {"X": "x", "Y": "x/$(Z)", "Z": "z", "N": "ns", "S": "v"}
    try:
        resolve(container, pod, lambda kind, ns, name: None, "127.0.0.1")
    except ConfigError as exc:
        assert 'secret "s" not found' in str(exc)  # kubelet's words
    else:
        raise AssertionError("a missing Secret must stop the container from starting")


def test_paths_translate_longest_mount_and_leave_other_values() -> None:
    paths = PathMap(
        [
            Mount("/workspace", Path("/pv/1"), "workspace"),
            Mount("/var/lib/claude", Path("/pods/u/volumes/config"), "config"),
            Mount("/var/lib/claude/projects", Path("/pv/1/.claude-projects"), "workspace"),
        ]
    )
    assert paths.translate("/workspace") == "/pv/1"
    assert paths.translate("/workspace/src/") == "/pv/1/src"
    assert paths.translate("/var/lib/claude/projects/x.jsonl") == "/pv/1/.claude-projects/x.jsonl"
    assert paths.translate("/var/lib/claude") == "/pods/u/volumes/config"
    assert paths.translate("/workspaces") == "/workspaces"  # a prefix, not a parent
    assert paths.translate("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert paths.translate("/workspace:/other") == "/workspace:/other"
    assert paths.nested_binds() == [
        Bind(Path("/pv/1/.claude-projects"), Path("/pods/u/volumes/config/projects"))
    ]


def test_signal_deaths_read_as_128_plus_signal() -> None:
    assert exit_code(3) == 3
    assert exit_code(-15) == 143
    assert exit_code(-9) == 137


def test_termination_message_keeps_the_last_4096_bytes(tmp_path: Path) -> None:
    message, log = tmp_path / "msg", tmp_path / "log"
    message.write_bytes(b"a" * 5000 + b"END")
    text = termination_message(str(message), str(log), "File", failed=True)
    assert len(text) == MAX_MESSAGE_BYTES and text.endswith("END")
    message.write_bytes(b"")
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(200)))
    fallback = termination_message(str(message), str(log), "FallbackToLogsOnError", failed=True)
    assert fallback.endswith("line 199\n") and "line 119\n" not in fallback
    assert termination_message(str(message), str(log), "File", failed=True) == ""


def pod_with_init(*inits: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {
            "initContainers": [{"name": n, "image": "i"} for n in inits],
            "containers": [{"name": "agent", "image": "i"}],
        },
    }


def conditions_of(patch: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in patch["conditions"]}


def test_init_containers_running_keep_the_pod_pending_and_uninitialized() -> None:
    pod = pod_with_init("clone", "seed")
    state = status.initial(pod)
    assert state.main["agent"] == State.waiting("PodInitializing")
    state.set("clone", State.running("2026-01-01T00:00:00Z", "c1"))
    patch = status.patch(pod, "127.0.0.1", state)["status"]
    assert patch["phase"] == "Pending"
    clone, seed = patch["initContainerStatuses"]
    assert (clone["started"], clone["ready"], clone["state"]) == (
        True, False, {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    )  # fmt: skip
    assert seed["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert patch["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    conds = conditions_of(patch)
    assert conds["Initialized"] == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [clone seed]"
    )  # fmt: skip
    unready = "containers with unready status: [agent]"
    assert conds["Ready"] == ("False", "ContainersNotReady", unready)
    assert conds["PodReadyToStartContainers"][0] == "True"


def test_a_failed_init_container_fails_the_pod_before_the_main_container() -> None:
    pod = pod_with_init("clone")
    state = status.initial(pod)
    state.set("clone", State.terminated(1, "Error", "RepoCloneFailed: x", cid="c1"))
    patch = status.patch(pod, "127.0.0.1", state)["status"]
    assert patch["phase"] == "Failed"
    clone = patch["initContainerStatuses"][0]
    assert (clone["ready"], clone["started"]) == (False, False)
    assert clone["state"]["terminated"]["exitCode"] == 1
    assert clone["state"]["terminated"]["message"] == "RepoCloneFailed: x"
    assert clone["containerID"] == "headroom-executor://c1"
    assert patch["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    conds = conditions_of(patch)
    assert conds["Initialized"][:2] == ("False", "ContainersNotInitialized")
    assert conds["Ready"] == ("False", "PodFailed", None)
    assert conds["ContainersReady"] == ("False", "PodFailed", None)
    assert conds["PodReadyToStartContainers"][0] == "False"


def test_completed_init_containers_are_ready_and_the_pod_runs_then_succeeds() -> None:
    pod = pod_with_init("clone")
    state = status.initial(pod)
    state.set("clone", State.terminated(0, "Completed"))
    assert status.phase(state) == "Pending"  # the main container is not created yet
    assert conditions_of(status.patch(pod, "127.0.0.1", state)["status"])["Initialized"] == (
        "True", None, None
    )  # fmt: skip
    state.set("agent", State.running("2026-01-01T00:00:00Z", "c2"))
    running = status.patch(pod, "127.0.0.1", state)["status"]
    assert running["phase"] == "Running"
    assert running["initContainerStatuses"][0]["ready"] is True
    assert conditions_of(running)["Ready"] == ("True", None, None)
    state.set("agent", State.terminated(0, "Completed"))
    done = status.patch(pod, "127.0.0.1", state)["status"]
    assert done["phase"] == "Succeeded"
    assert conditions_of(done)["Initialized"] == ("True", "PodCompleted", None)
    assert conditions_of(done)["Ready"] == ("False", "PodCompleted", None)


def test_a_pod_level_reason_fails_the_pod_whatever_its_containers_say() -> None:
    pod = pod_with_init()
    state = status.initial(pod)
    state.set("agent", State.running("2026-01-01T00:00:00Z", "c"))
    state.reason, state.message = status.DEADLINE_REASON, status.DEADLINE_MESSAGE
    patch = status.patch(pod, "127.0.0.1", state)["status"]
    assert (patch["phase"], patch["reason"]) == ("Failed", "DeadlineExceeded")
    assert "initContainerStatuses" not in patch  # a pod without init containers has none
    assert patch["containerStatuses"][0]["state"]["running"]  # still being stopped
    assert conditions_of(patch)["PodReadyToStartContainers"][0] == "True"


def test_status_read_back_from_the_api_form() -> None:
    pod = pod_with_init("clone")
    clone = State.terminated(0, "Completed", started_at="2026-01-01T00:00:00Z", cid="x-1")
    pod["status"] = {
        "startTime": "2026-01-01T00:00:00Z",
        "initContainerStatuses": [{"name": "clone", "state": clone.api()}],
        "containerStatuses": [{"name": "agent", "state": {"running": {"startedAt": "t"}}}],
    }
    state = status.from_status(pod)
    assert state.init["clone"] == clone
    assert state.main["agent"] == State.running("t", None)
    assert state.start_time == "2026-01-01T00:00:00Z"


def test_env_from_prefix_optional_and_env_overriding_it() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}
    objects = {("ConfigMap", "cfg"): {"A": "1", "B": "2"}, ("Secret", "sec"): {"T": "s"}}
    container = {
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "sec"}, "prefix": "S_"},
            {"configMapRef": {"name": "absent", "optional": True}},
        ],
        "env": [
            {"name": "B", "value": "from-env $(A)"},
            {"name": "O", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "no",
                                                         "optional": True}}},
        ],
    }  # fmt: skip
    env = resolve(container, pod, lambda kind, ns, name: objects.get((kind, name)), "127.0.0.1")
    assert env == {"A": "1", "B": "from-env 1", "S_T": "s"}
    container["envFrom"].append({"secretRef": {"name": "absent"}})
    with pytest.raises(ConfigError, match='secret "absent" not found'):
        resolve(container, pod, lambda kind, ns, name: objects.get((kind, name)), "127.0.0.1")


def test_json_env_values_have_their_container_paths_translated() -> None:
    paths = PathMap([Mount("/workspace", Path("/pv/1"), "workspace")])
    repos = '[{"url": "https://x/y.git", "path": "/workspace/y", "depth": 1, "ref": null}]'
    assert json.loads(paths.translate(repos)) == [
        {"url": "https://x/y.git", "path": "/pv/1/y", "depth": 1, "ref": None}
    ]
    untouched = '{"allowedTools": ["Bash"],  "effort": "high"}'
    assert paths.translate(untouched) == untouched  # byte for byte
    assert paths.translate("{not json") == "{not json"


class FakeSources:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects

    def object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def claim_dir(self, namespace: str, claim: str) -> Path:
        raise ConfigError(f'persistentvolumeclaim "{claim}" not found')

    def token(self, pod: dict[str, Any], audience: str | None, seconds: int) -> str:
        return "token"


def test_volumes_with_items_optional_and_downward_labels(tmp_path: Path) -> None:
    secret = {"data": {"token": base64.b64encode(b"t0k").decode(), "other": "eA=="}}
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"b": "2", "a": "1"}},
        "spec": {"volumes": [
            {"name": "git", "secret": {"secretName": "git", "defaultMode": 0o400,
                                       "items": [{"key": "token", "path": "creds/token"}]}},
            {"name": "cfg", "configMap": {"name": "cfg", "optional": True,
                                          "items": [{"key": "k", "path": "k.json", "mode": 0o600},
                                                    {"key": "missing", "path": "m"}]}},
            {"name": "gone", "configMap": {"name": "absent", "optional": True}},
            {"name": "meta", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        ]},
    }  # fmt: skip
    sources = FakeSources({("Secret", "git"): secret, ("ConfigMap", "cfg"): {"data": {"k": "{}"}}})
    volumes = prepare_volumes(pod, tmp_path, sources, "127.0.0.1")
    git = volumes.dirs["git"]
    assert sorted(p.name for p in git.rglob("*") if p.is_file()) == ["token"]
    assert (git / "creds" / "token").read_bytes() == b"t0k"
    assert (git / "creds" / "token").stat().st_mode & 0o777 == 0o400
    assert [p.name for p in volumes.dirs["cfg"].iterdir()] == ["k.json"]
    assert (volumes.dirs["cfg"] / "k.json").stat().st_mode & 0o777 == 0o600
    assert not any(volumes.dirs["gone"].iterdir())
    assert (volumes.dirs["meta"] / "labels").read_text() == 'a="1"\nb="2"'
    assert len(volumes.scratch) == 5
    del sources.objects[("Secret", "git")]
    with pytest.raises(MountError, match='volume "git" : secret "git" not found'):
        prepare_volumes(pod, tmp_path, sources, "127.0.0.1")
    assert not (tmp_path / "volumes" / "git").exists()  # nothing secret left while waiting
    sources.objects[("Secret", "git")] = {"data": {"other": "eA=="}}
    with pytest.raises(MountError, match="references non-existent secret key: token"):
        prepare_volumes(pod, tmp_path, sources, "127.0.0.1")


def test_a_directory_holding_only_mount_points_gets_them_bound_under_a_rootfs() -> None:
    paths = PathMap(
        [
            Mount("/var/run/headroom/git/0", Path("/pod/volumes/git-0"), "git-0"),
            Mount("/var/run/headroom/git/1", Path("/pod/volumes/git-1"), "git-1"),
            Mount("/var/lib/claude", Path("/pod/volumes/config"), "config"),
            Mount("/var/lib/claude/projects", Path("/pv/1/.claude-projects"), "workspace"),
        ],
        rootfs=Path("/pod/rootfs"),
    )
    assert paths.ancestor_binds() == []  # nothing handed out yet: no binds needed
    assert paths.translate("/var/run/headroom/git") == "/pod/rootfs/var/run/headroom/git"
    assert paths.translate("/usr/bin") == "/usr/bin"  # holds no mount: the host's
    assert paths.translate("/") == "/"
    assert paths.local("/var/lib", ancestors=False) is None
    assert paths.ancestor_binds() == [
        Bind(Path("/pod/volumes/git-0"), Path("/pod/rootfs/var/run/headroom/git/0")),
        Bind(Path("/pod/volumes/git-1"), Path("/pod/rootfs/var/run/headroom/git/1")),
    ]
    paths.local("/var")
    assert Bind(Path("/pod/volumes/config"), Path("/pod/rootfs/var/lib/claude")) in (
        paths.ancestor_binds()
    )  # the nested projects mount travels with it, not bound a second time
    assert len(paths.ancestor_binds()) == 3
