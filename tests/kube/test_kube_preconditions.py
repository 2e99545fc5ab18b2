"""The precondition that makes a pass on a cached copy safe, against a real API server: a
status write that carries an older resourceVersion is refused, and the current one passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from headroom.kube.client import Kube, KubeConflict
from headroom.kube.transport import Transport

pytestmark = pytest.mark.integration


async def test_a_status_write_from_a_stale_copy_is_refused(
    kubeconfig: Path, namespace: str
) -> None:
    configuration = k8s_client.Configuration()
    await k8s_config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    kube = Kube(Transport(configuration))
    try:
        session = {
            "apiVersion": "headroom.dev/v1alpha1",
            "kind": "AgentSession",
            "metadata": {"name": "s1", "namespace": namespace},
            "spec": {"prompt": "Fix the flaky test"},
        }
        created = await kube.request(
            "POST", f"/apis/headroom.dev/v1alpha1/namespaces/{namespace}/agentsessions", session
        )
        assert created is not None
        first = created["metadata"]["resourceVersion"]
        written = await kube.patch_session_status(namespace, "s1", {"attempt": 1}, first)
        assert written is not None and written["status"]["attempt"] == 1
        with pytest.raises(KubeConflict):
            await kube.patch_session_status(namespace, "s1", {"attempt": 2}, first)
        current = await kube.get_session(namespace, "s1")
        assert current is not None and current["status"]["attempt"] == 1
        again = await kube.patch_session_status(
            namespace, "s1", {"attempt": 2}, current["metadata"]["resourceVersion"]
        )
        assert again is not None and again["status"]["attempt"] == 2
    finally:
        await kube.close()
