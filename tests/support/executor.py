"""`headroom-dev executor` (the dev stand-in for a kubelet) and its PVC provisioner as real
subprocesses, for integration and e2e tests.

Fixtures (register with `pytest_plugins = ["tests.support.executor"]` in tests/conftest.py,
or import them into a domain conftest):
- `volume_provisioner` (session): StorageClass headroom-local (default) and hostPath PVs
  under ~/.cache/headroom/volumes. Anything that creates PVCs in the local cluster needs it.
- `executor` (session): a throwaway Node `headroom-test-<id>` whose pods run as local
  processes. Steer pods to it with `executor.node_selector` and `executor.tolerations`, or
  start the operator with `*executor.operator_flags()`. A pod's output:
  `executor.container_log(pod_uid)` (an init container's: `init_container=name`); every
  output file so far: `executor.container_logs()`.
Several test sessions may share the local cluster: each session has its own node (selected
by hostname, so another session's node never gets its pods); provisioners coexist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLAUDE_BIN = REPO / "hack" / "claude-code" / "node_modules" / ".bin"
TEST_NODE_LABEL = "headroom.dev/test-executor"
TAINT_KEY = "headroom.dev/executor"
STALE_NODE_SECONDS = 300


@dataclass
class _Process:
    kubeconfig: Path
    log_path: Path
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def args(self) -> list[str]:
        raise NotImplementedError

    def launch(self) -> None:
        log = self.log_path.with_suffix(f".{len(self.logs)}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.logs.append(log)
        cmd = [sys.executable, "-m", "headroom_dev", "executor",
               "--kubeconfig", str(self.kubeconfig), *self.args(), *self.extra]  # fmt: skip
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **self.env}
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: as a crash; the pods it ran are left for the next executor to find."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def wait_logged(self, text: str, timeout: float = 30) -> None:
        """Wait until the current run (not an earlier one) logged `text`."""
        deadline = time.monotonic() + timeout
        while text not in self.logs[-1].read_text(errors="replace"):
            if not self.alive():
                raise AssertionError(f"executor exited:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"executor never logged {text!r}:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)


@dataclass
class ProvisionerProcess(_Process):
    def args(self) -> list[str]:
        return ["--provisioner-only"]

    def start(self) -> ProvisionerProcess:
        self.launch()
        self.wait_logged("provisioning StorageClass")
        return self


@dataclass
class ExecutorProcess(_Process):
    node_name: str = field(default_factory=lambda: f"headroom-test-{uuid.uuid4().hex[:8]}")
    state_dir: Path = Path()

    def args(self) -> list[str]:
        paths = ["--path", str(CLAUDE_BIN)] if CLAUDE_BIN.is_dir() else []
        return [
            "--no-provisioner", "--remove-node-on-exit", "--node-name", self.node_name,
            "--state-dir", str(self.state_dir), "--label", f"{TEST_NODE_LABEL}=true", *paths,
        ]  # fmt: skip

    def start(self) -> ExecutorProcess:
        self.launch()
        self.wait_logged(f"serving pods of node {self.node_name}")
        return self

    @property
    def node_selector(self) -> dict[str, str]:
        return {"kubernetes.io/hostname": self.node_name}

    @property
    def tolerations(self) -> list[dict[str, str]]:
        return [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]

    def operator_flags(self) -> list[str]:
        """Flags for `headroom operator` so its agent pods run on this executor."""
        return [
            "--agent-node-selector", json.dumps(self.node_selector),
            "--agent-tolerations", json.dumps(self.tolerations),
        ]  # fmt: skip

    def pod_dir(self, pod_uid: str) -> Path:
        return self.state_dir / self.node_name / "pods" / pod_uid

    def container_logs(self) -> list[Path]:
        """The output files of every container (init containers too) this node ran so far,
        oldest first; those of deleted pods are gone with their pod directories."""
        pods = self.state_dir / self.node_name / "pods"
        found = [*pods.glob("*/container.log"), *pods.glob("*/init/*/container.log")]
        return sorted((p for p in found if p.exists()), key=_mtime)

    def container_log(self, pod_uid: str, init_container: str | None = None) -> str:
        """The output of the pod's main container, or of one of its init containers."""
        base = self.pod_dir(pod_uid)
        if init_container is not None:
            base = base / "init" / init_container
        path = base / "container.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # its pod was deleted meanwhile
        return 0.0


def remove_stale_test_nodes(api: Any) -> None:
    """Nodes of test executors that crashed (no graceful exit removed them)."""
    from kubernetes import client

    core, leases = client.CoreV1Api(api), client.CoordinationV1Api(api)
    now = datetime.now(UTC)
    for node in core.list_node(label_selector=f"{TEST_NODE_LABEL}=true").items:
        name = node.metadata.name
        try:
            renewed = leases.read_namespaced_lease(name, "kube-node-lease").spec.renew_time
        except client.ApiException:
            renewed = None
        if renewed is None or (now - renewed).total_seconds() > STALE_NODE_SECONDS:
            core.delete_node(name)


@pytest.fixture(scope="session")
def volume_provisioner(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProvisionerProcess]:
    log = tmp_path_factory.mktemp("provisioner") / "provisioner"
    proc = ProvisionerProcess(kubeconfig, log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def executor(
    kubeconfig: Path,
    k8s: Any,
    volume_provisioner: ProvisionerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExecutorProcess]:
    remove_stale_test_nodes(k8s)
    base = tmp_path_factory.mktemp("executor")
    proc = ExecutorProcess(kubeconfig, base / "executor", state_dir=base / "state").start()
    try:
        yield proc
    finally:
        proc.stop()


__all__ = ["ExecutorProcess", "ProvisionerProcess", "executor", "volume_provisioner"]
