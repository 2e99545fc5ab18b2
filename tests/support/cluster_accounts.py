"""ClusterClaudeAccounts for integration tests: one, with its Secret in the operator's
namespace, created through the real API; and its status."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from tests.support.operator import GROUP, VERSION, wait_for

PLURAL = "clusterclaudeaccounts"


def create_cluster_account(
    api: client.ApiClient,
    system: str,
    name: str,
    *,
    max_sessions: int,
    admits: dict[str, Any],
    priority: int = 0,
    token: str | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """The account `name`, its token (by default fake-<name>-token) in `system`."""
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{name}-claude"),
        string_data={"token": token or f"fake-{name}-token"},
    )
    client.CoreV1Api(api).create_namespaced_secret(system, secret)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterClaudeAccount",
        "metadata": {"name": name, "labels": labels or {"tier": "shared"}},
        "spec": {
            "credentials": {"secretRef": {"name": f"{name}-claude"}, "type": "OAuthToken"},
            "maxSessions": max_sessions,
            "priority": priority,
            "allowedNamespaces": admits,
        },
    }
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    return name


def cluster_status(api: client.ApiClient, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    return dict(found.get("status") or {})


def wait_cluster_phase(
    api: client.ApiClient, name: str, phase: str, timeout: float = 30
) -> dict[str, Any]:
    return wait_for(
        f"ClusterClaudeAccount {name} {phase}",
        lambda: (s := cluster_status(api, name)).get("phase") == phase and s,
        timeout,
    )


def delete_cluster_account(api: client.ApiClient, name: str) -> None:
    try:
        client.CustomObjectsApi(api).delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
