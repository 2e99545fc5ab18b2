"""A control plane of a test's own (hack/cluster/up.sh with another cluster name), for faults
that must not touch the shared `headroom` cluster other tests and helpers use: here its
kube-apiserver can be stopped and started again.

The name carries this pytest process's pid, so two test runs never share (and never stop)
each other's cluster; clusters left behind by dead runs are removed on the next start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.operator import REPO, wait_for

CLUSTER_SCRIPTS = REPO / "hack" / "cluster"
# Named after the caller's own cluster (HEADROOM_CLUSTER_NAME), so that several checkouts on
# one machine each find, and clean up, only their own.
PREFIX = f"{os.environ.get('HEADROOM_CLUSTER_NAME') or 'headroom'}-faults-"


def kwok_workdir() -> Path:
    """Where hack/cluster/lib.sh keeps kwokctl's clusters (same defaults)."""
    if os.environ.get("HEADROOM_KWOK_WORKDIR"):
        return Path(os.environ["HEADROOM_KWOK_WORKDIR"])
    cache = os.environ.get("HEADROOM_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headroom"
    )
    return Path(cache) / "kwok"


def _script(name: str, cluster: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HEADROOM_CLUSTER_NAME": cluster,
        "HEADROOM_KUBECONFIG_OUT": str(kubeconfig),
    }
    env.pop("HEADROOM_CLUSTER_LEASE", None)
    return subprocess.run(
        [str(CLUSTER_SCRIPTS / name), *args], env=env, capture_output=True, text=True, check=False
    )


def remove_orphans(scratch: Path) -> None:
    """Delete private clusters whose pytest process is gone (a run killed before teardown)."""
    clusters = kwok_workdir() / "clusters"
    for state in clusters.glob(f"{PREFIX}*") if clusters.is_dir() else []:
        owner = state.name.removeprefix(PREFIX)
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _script("down.sh", state.name, scratch / f"{state.name}.kubeconfig")


@dataclass
class Component:
    """One process of the cluster (kube-apiserver, etcd), as kwokctl started it (pid file
    under its state directory), restartable with the very same command line."""

    state_dir: Path
    name: str = "kube-apiserver"
    argv: list[str] = field(default_factory=list)
    cwd: str = ""
    restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def stop(self) -> None:
        """SIGKILL, as a crashed or OOM-killed apiserver: no graceful goodbye to watchers."""
        pid = self.pid()
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        assert self.argv[0].startswith(str(self.state_dir)), self.argv
        os.kill(pid, signal.SIGKILL)
        for popen in self.restarted:
            if popen.pid == pid:
                popen.wait(10)
        wait_for(f"{self.name} gone", lambda: not _running(pid), timeout=30)

    def start(self) -> None:
        """Start it again. A kube-apiserver started within a moment of its SIGKILL may find
        its port still taken ("bind: address already in use") and exit at once: then it is
        started again, up to a minute."""
        deadline = time.monotonic() + 60
        while True:
            popen = self._spawn()
            try:
                popen.wait(3)
            except subprocess.TimeoutExpired:
                return  # still up: it got its ports
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} keeps exiting ({popen.returncode}); see its log")
            time.sleep(1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.state_dir / "logs" / f"{self.name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # like kwokctl's: not tied to pytest's terminal
            )
        self.restarted.append(popen)
        # kwokctl and down.sh find the component by this file.
        self.pid_file.write_text(f"{popen.pid}\n")
        return popen

    def reap(self) -> None:
        for popen in self.restarted:
            if popen.poll() is None:
                popen.kill()
            popen.wait(10)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


ApiServer = Component  # the one most faults restart


@dataclass
class PrivateCluster:
    name: str
    kubeconfig: Path
    apiserver: Component
    etcd: Component

    @classmethod
    def up(cls, scratch: Path) -> PrivateCluster:
        remove_orphans(scratch)
        name = f"{PREFIX}{os.getpid()}"
        kubeconfig = scratch / f"{name}.kubeconfig"
        done = _script("up.sh", name, kubeconfig)
        if done.returncode != 0:
            _script("down.sh", name, kubeconfig)
            why = done.stderr[-3000:]
            raise RuntimeError(f"up.sh for {name} failed ({done.returncode}):\n{why}")
        state = kwok_workdir() / "clusters" / name
        return cls(name, kubeconfig, Component(state), Component(state, "etcd"))

    def down(self) -> str:
        done = _script("down.sh", self.name, self.kubeconfig)
        self.apiserver.reap()
        self.etcd.reap()
        return "" if done.returncode == 0 else done.stderr[-3000:]

    def kubectl(self, kubectl_path: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_path, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    def ready(self, kubectl_path: str) -> bool:
        return self.kubectl(kubectl_path, "get", "--raw", "/readyz").stdout.strip() == "ok"

    def wait_ready(self, kubectl_path: str, timeout: float = 120) -> None:
        started = time.monotonic()
        wait_for(f"{self.name} apiserver ready", lambda: self.ready(kubectl_path), timeout)
        print(f"[faults] {self.name} apiserver ready after {time.monotonic() - started:.1f}s")
