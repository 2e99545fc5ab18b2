"""The witness the fault tests rely on can fail: two live pods for one session, or more on an
account than its maxSessions, are caught even when they last only a moment."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from tests.support.operator import NO_NODE, Scene, wait_for

pytestmark = pytest.mark.integration


def _pod(scene: Scene, name: str, session: str, account: str) -> None:
    scene.core.create_namespaced_pod(
        scene.ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={"app.kubernetes.io/managed-by": "headroom", "headroom.dev/attempt": "1"},
                annotations={"headroom.dev/session": session, "headroom.dev/account": account},
            ),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="agent", image="none")],
                node_selector=json.loads(NO_NODE),  # as the operator's test pods: no node runs them
            ),
        ),
    )


def test_witness_catches_a_brief_double_pod_and_an_overfull_account(
    scene: Scene, pod_history
) -> None:
    history = pod_history({"alice": 1})
    _pod(scene, "a-1", "s1", "alice")
    _pod(scene, "a-2", "s1", "alice")  # a second live pod for s1, on a full account
    scene.core.delete_namespaced_pod("a-2", scene.ns, grace_period_seconds=0)
    wait_for("the deletion seen", lambda: set(history.live()) == {"a-1"})
    whats = [v.what for v in history.violations]
    assert any("session s1" in w for w in whats), whats
    assert any("account alice: 2 live pods > 1" in w for w in whats), whats
    assert history.peak_per_session == 2
    # a finished pod no longer counts
    scene.finish_pod("a-1", None, exit_code=1, raw_message="")
    wait_for("a-1 finished", lambda: not history.live())
