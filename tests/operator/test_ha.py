"""Two replicas, one actor: kopf peering with distinct priorities through the real apiserver.

The active replica is SIGKILLed (no goodbye, so its peering record stays until its lifetime
runs out); the standby must take over: adopt the pods the dead one made, place new sessions,
move walled ones, and never run two live pods for one session (a watch witnesses every pod
event of the whole scenario).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.operator import OperatorProcess, Scene, in_seconds, wait_for
from tests.support.pod_history import PodHistory

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PEERING_CRDS = REPO / "manifests" / "kopf" / "peering-crds.yaml"
PEERING = "headroom"
# Short, so the standby notices the SIGKILLed replica quickly (kopf's default is 60 s).
LIFETIME = 6
PEERING_FLAGS = ["--peering", PEERING, "--peering-lifetime", str(LIFETIME)]


@pytest.fixture(scope="module")
def kopf_peering_crd(kubectl: Any) -> None:
    """kopf's peering CRDs, installed like any user would (never removed: cluster-wide and
    harmless to operators that run standalone)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/kopfpeerings.kopf.dev", "crd/clusterkopfpeerings.kopf.dev",
    )  # fmt: skip


def replica(kubeconfig: Path, namespace: str, tmp_path: Path, name: str, priority: int) -> Any:
    return OperatorProcess(
        kubeconfig,
        namespace,
        tmp_path / name,
        extra=[*PEERING_FLAGS, "--priority", str(priority)],
    )


@pytest.fixture
def replicas(
    kopf_peering_crd: None, kubeconfig: Path, namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    leader = replica(kubeconfig, namespace, tmp_path, "leader", 200).start()
    standby = replica(kubeconfig, namespace, tmp_path, "standby", 100).start()
    try:
        yield leader, standby
    finally:
        leader.stop()
        standby.stop()


def peers(scene: Scene) -> dict[str, Any]:
    try:
        body = scene.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", scene.ns, "kopfpeerings", PEERING
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict(body.get("status") or {})


def gauge(operator: OperatorProcess, name: str) -> float | None:
    try:
        text = operator.metrics()
    except OSError:  # not serving yet
        return None
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def reporters(scene: Scene) -> set[str]:
    """The replicas (peering identities) that wrote the namespace's Events."""
    return {
        e.reporting_instance for e in scene.events() if e.reporting_component == "headroom-operator"
    }


def events_since(scene: Scene, moment: datetime) -> list[Any]:
    return [
        e
        for e in scene.events()
        if e.reporting_component == "headroom-operator"
        and (e.event_time or e.last_timestamp) > moment
    ]


def acted(operator: OperatorProcess) -> list[str]:
    """Lines where this replica ran a handler or recorded a placement."""
    return [
        line
        for line in operator.log_text().splitlines()
        if "Handler 'session_event'" in line or re.search(r"\bPlaced\b", line)
    ]


def test_standby_takes_over_when_the_active_replica_is_killed(
    scene: Scene, replicas: tuple[OperatorProcess, OperatorProcess], k8s: Any
) -> None:
    leader, standby = replicas
    wait_for("both replicas in the peering record", lambda: len(peers(scene)) == 2, 60)
    wait_for("the leader acts", lambda: gauge(leader, "headroom_operator_active") == 1, 60)
    ids = {info["priority"]: peer for peer, info in peers(scene).items()}
    assert set(ids) == {100, 200}

    history = PodHistory(k8s, scene.ns, max_sessions={"alice": 3, "bob": 3}).start()
    try:
        scene.account("alice", max_sessions=3, priority=5)
        scene.account("bob", max_sessions=3)
        names = ["s1", "s2", "s3"]
        for name in names:
            scene.session(name)
        first = {n: scene.wait_running(n, attempt=1) for n in names}
        assert {s["account"] for s in first.values()} == {"alice"}

        # Only the leader acted; the standby watched nothing and wrote nothing.
        assert acted(leader)
        assert acted(standby) == [], acted(standby)
        assert gauge(standby, "headroom_operator_active") == 0
        assert standby.alive()
        assert reporters(scene) == {ids[200]}  # every Event so far came from the leader

        killed_at = time.monotonic()
        leader.kill()
        # A SIGKILLed replica says no goodbye: its record stays until its lifetime runs out.
        assert any(info["priority"] == 200 for info in peers(scene).values())
        # Work that arrives while nobody leads: a wall on s1's pod, and a new session.
        scene.finish_pod(
            first["s1"]["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600)
        )
        scene.session("s4")
        placed = scene.wait_running("s4", attempt=1, timeout=LIFETIME * 10 + 60)
        takeover = time.monotonic() - killed_at
        moved = scene.wait_running("s1", attempt=2, timeout=60)

        assert placed["account"] in {"alice", "bob"}  # s4 may take the slot s1 left on alice
        assert moved["account"] == "bob"
        assert moved["claudeSessionId"] == first["s1"]["claudeSessionId"]
        for name in ("s2", "s3"):  # adopted as they were: no second pod, no new attempt
            now = scene.status("agentsessions", name)
            assert (now["attempt"], now["podName"]) == (1, first[name]["podName"])
        assert acted(standby)
        # The gate for the operator's own timers follows the peering record (polled).
        wait_for("the standby's gate", lambda: gauge(standby, "headroom_operator_active") == 1)
        # Events are posted in the background: wait for the standby's first one.
        wait_for("Events from both", lambda: reporters(scene) == {ids[200], ids[100]})
        print(f"\n[ha] takeover after SIGKILL: {takeover:.1f}s (peering lifetime {LIFETIME}s)")

        live = scene.live_pods()
        agent_pods = "app.kubernetes.io/managed-by=headroom"
        wait_for(
            "the watch caught up",
            lambda: history.caught_up_with(
                scene.core.list_namespaced_pod(scene.ns, label_selector=agent_pods).items
            ),
        )
    finally:
        history.stop()
    assert history.violations == [], [v.what for v in history.violations[:5]]
    assert history.peak_per_session == 1, history.summary()
    assert not history.relists, history.relists  # the witness saw every event
    sessions = sorted(p.metadata.annotations["headroom.dev/session"] for p in live)
    assert sessions == ["s1", "s2", "s3", "s4"]
    # The dead leader's record expired and the survivor cleaned it (kopf's autoclean).
    assert [info["priority"] for info in peers(scene).values()] == [100]


def test_a_higher_priority_replica_takes_over_and_the_old_leader_stops_its_timers(
    scene: Scene, kopf_peering_crd: None, kubeconfig: Path, tmp_path: Path
) -> None:
    """kopf pauses only watch streams; the old leader also holds timers (here: retry a failed
    attempt after a backoff). Only the new leader may act when the backoff ends."""
    slow_retry = ["--backoff", "40s", "--max-backoff", "40s"]  # after FAST_FLAGS: these win
    old = replica(kubeconfig, scene.ns, tmp_path, "old", 100)
    new = replica(kubeconfig, scene.ns, tmp_path, "new", 200)
    old.extra += slow_retry
    new.extra += slow_retry
    old.start()
    try:
        wait_for("the first replica leads", lambda: gauge(old, "headroom_operator_active") == 1, 60)
        scene.account("alice")
        s1 = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
        scene.finish_pod(s1["podName"], Outcome.FAILED, detail="the agent crashed")
        retry_at = wait_for(
            "a retry scheduled", lambda: scene.status("agentsessions", "s1").get("retryAt")
        )
        placed_by_old = len(acted(old))

        new.start()
        wait_for("the new replica leads", lambda: gauge(new, "headroom_operator_active") == 1, 30)
        wait_for("the old one stands by", lambda: gauge(old, "headroom_operator_active") == 0)
        assert scene.status("agentsessions", "s1").get("attempt") == 1, "retried too soon"
        ids = {info["priority"]: peer for peer, info in peers(scene).items()}
        handed_over = datetime.now(UTC)

        # When the backoff ends the session gets its next attempt: from the new leader alone.
        retried = scene.wait_running("s1", attempt=2, timeout=90)
        assert retried["account"] == "alice"
        assert datetime.now(UTC) >= datetime.fromisoformat(retry_at.replace("Z", "+00:00"))
        assert old.alive() and new.alive()
        assert len(acted(old)) == placed_by_old, acted(old)[placed_by_old:]
        placed = wait_for(
            "the Event of attempt 2",
            lambda: [e for e in events_since(scene, handed_over) if "attempt 2" in e.message],
        )
        assert {e.reason for e in placed} == {"Placed"}
        later = {e.reporting_instance for e in events_since(scene, handed_over)}
        assert later == {ids[200]}, later
        assert len(scene.live_pods()) == 1
    finally:
        new.stop()
        old.stop()


@pytest.fixture
def bare_cluster(tmp_path: Path, kubectl_path: str) -> Iterator[Path]:
    """A private control plane without kopf's peering CRD (the shared one may have it)."""
    env = {
        **os.environ,
        "HEADROOM_CLUSTER_NAME": f"headroom-bare-{os.getpid()}",
        "HEADROOM_KUBECONFIG_OUT": str(tmp_path / "bare.kubeconfig"),
    }
    scripts = REPO / "hack" / "cluster"
    up = subprocess.run([scripts / "up.sh"], env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        yield Path(up.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([scripts / "down.sh"], env=env, capture_output=True, check=False)


def test_peering_without_kopfs_crd_refuses_to_start_then_creates_its_peering_object(
    bare_cluster: Path, kubectl_path: str, tmp_path: Path
) -> None:
    def kubectl(*args: str) -> str:
        cmd = [kubectl_path, "--kubeconfig", str(bare_cluster), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    kubectl("create", "namespace", "agents")
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        kubectl("apply", "-f", str(crd))
    cmd = [
        sys.executable, "-m", "headroom", "operator", "-n", "agents", "--metrics-port", "0",
        "--liveness", "", "--peering", PEERING, "--priority", "7",
    ]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(bare_cluster)}
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    output = refused.stdout + refused.stderr
    assert "kopfpeerings.kopf.dev" in output and "manifests/kopf/peering-crds.yaml" in output

    kubectl("apply", "-f", str(PEERING_CRDS))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    log = tmp_path / "peered.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # No peering object was made by hand: the operator creates it and joins it.
        def joined() -> bool:
            found = subprocess.run(
                [kubectl_path, "--kubeconfig", str(bare_cluster), "get", "kopfpeering",
                 PEERING, "-n", "agents", "-o", "jsonpath={.status}"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            return '"priority":7' in found.stdout

        wait_for("the operator in its peering object", joined, 60)
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
