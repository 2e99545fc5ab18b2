"""Shared fixtures: a real Kubernetes control plane for integration and e2e tests.

The session starts (or reuses) the local cluster with hack/cluster/up.sh, unless
HEADROOM_TEST_KUBECONFIG names an existing cluster. It takes a lease on the local
cluster so that concurrent sessions share it, and it stops the cluster at the end
only if a test session started it (a developer's `make cluster` survives).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from tests.support.crds import install_crds

# The real node and its private cluster: one per test session, shared by tests/node and
# tests/e2e (registered here so that both get the same session-scoped fixtures).
pytest_plugins = ["tests.support.node_fixtures"]

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPTS = REPO / "hack" / "cluster"
TEST_NAMESPACE_LABEL = "headroom.dev/test"
CLUSTER_MARKERS = ("integration", "e2e")


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message carries kubectl's own output."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every integration/e2e test gets the cluster, even if it names no fixture.

    If the cluster cannot start, the `kubeconfig` fixture fails (pytest.fail), so
    each such test is reported as an error, never as a skip.
    """
    for item in items:
        wants_cluster = any(item.get_closest_marker(m) for m in CLUSTER_MARKERS)
        names = getattr(item, "fixturenames", None)
        if wants_cluster and names is not None and "kubeconfig" not in names:
            names.insert(0, "kubeconfig")


@pytest.fixture(scope="session")
def cluster_bin() -> Path | None:
    """Directory of the binaries built by hack/cluster/build.sh (None if unusable)."""
    if os.environ.get("HEADROOM_TEST_KUBECONFIG") and shutil.which("go") is None:
        return None
    done = _run([str(CLUSTER_SCRIPTS / "build.sh")])
    if done.returncode != 0:
        pytest.fail(
            f"hack/cluster/build.sh failed (exit {done.returncode}):\n{_tail(done.stderr)}",
            pytrace=False,
        )
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kubectl_path(cluster_bin: Path | None) -> str:
    override = os.environ.get("HEADROOM_KUBECTL")
    if override:
        return override
    if cluster_bin is not None:
        return str(cluster_bin / "kubectl")
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: set HEADROOM_KUBECTL or install Go to build one", pytrace=False)
    return found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def _cluster(request: pytest.FixtureRequest) -> Iterator[Path]:
    """Kubeconfig of the cluster under test, started or reused for this session."""
    external = os.environ.get("HEADROOM_TEST_KUBECONFIG")
    if external:
        yield Path(external)
        return
    lease = str(os.getpid())
    env = {**os.environ, "HEADROOM_CLUSTER_LEASE": lease}
    started = time.monotonic()
    up = _run([str(CLUSTER_SCRIPTS / "up.sh")], env=env)
    if up.returncode != 0:
        # A failed start may still have leased; release so nothing is left running.
        _run([str(CLUSTER_SCRIPTS / "down.sh"), "--release", lease])
        pytest.fail(
            f"local cluster failed to start (hack/cluster/up.sh exit {up.returncode}):\n"
            f"{_tail(up.stderr)}",
            pytrace=False,
        )
    print(f"\n[cluster] up.sh took {time.monotonic() - started:.1f}s")
    # A SIGTERM (e.g. from `timeout`) would kill pytest without teardown and leave the
    # lease, and a cluster this session started, behind: turn it into an interrupt.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield Path(up.stdout.strip().splitlines()[-1])
    finally:
        signal.signal(signal.SIGTERM, previous)
        down = _run([str(CLUSTER_SCRIPTS / "down.sh"), "--release", lease])
        if down.returncode != 0:
            print(f"[cluster] down.sh --release failed:\n{_tail(down.stderr)}")


@pytest.fixture(scope="session")
def kubeconfig(_cluster: Path, kubectl_path: str) -> Path:
    """Path to the cluster's kubeconfig, with every CRD in crds/ installed and Established."""
    failed = install_crds(kubectl_path, _cluster)
    if failed:
        pytest.fail(failed, pytrace=False)
    return _cluster


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path, kubectl_path: str) -> Kubectl:
    """Run the built kubectl against the test cluster: kubectl("get", "pods", input=None)."""

    def run(
        *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [kubectl_path, "--kubeconfig", str(kubeconfig), *args]
        done = _run(cmd, input=input)
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, cmd, done.stdout, done.stderr)
        return done

    return run


@pytest.fixture(scope="session")
def k8s(kubeconfig: Path) -> Iterator[Any]:
    """A kubernetes.client.ApiClient (sync client) for the test cluster."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


def _namespace_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace(k8s: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (label headroom.dev/test=true), deleted without waiting afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(k8s)
    name = _namespace_name(request.node.name)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={TEST_NAMESPACE_LABEL: "true"})
        )
    )
    # Pods are refused until the controller manager has created the namespace's
    # default ServiceAccount; wait for it so tests never race that.
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: default ServiceAccount never appeared", pytrace=False)
        time.sleep(0.1)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def helm_path() -> Path:
    """helm, built from its Go module by hack/helm/build.sh (cached by version)."""
    from tests.support.tools import built

    return built("helm/build.sh")


@pytest.fixture(scope="session")
def helm(helm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """helm for rendering and linting (tests.support.tools.Helm): no cluster."""
    from tests.support.tools import Helm

    return Helm(helm_path, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def kubeconform_path() -> Path:
    """kubeconform, built from its Go module by hack/kubeconform/build.sh."""
    from tests.support.tools import built

    return built("kubeconform/build.sh")


@pytest.fixture(scope="session")
def checkov_path() -> Path:
    """checkov (PyPI), in its own virtualenv made by hack/checkov/install.sh."""
    from tests.support.tools import built

    return built("checkov/install.sh")
