"""The operator's only Kubernetes client: JSON in, JSON out, over kubernetes_asyncio's
authenticated transport. Typed models are skipped on purpose: the operator works on plain
dicts (as kopf hands them over) and deserializing thousands of pods into models costs CPU
for nothing."""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from headroom import API_VERSION

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
UNREACHABLE = "Unreachable"  # KubeError.reason when no HTTP answer came back at all


class KubeError(Exception):
    """A Kubernetes API call failed. Carries the status code and the server's message (which
    never contains Secret data: we never send Secret data in a request we log)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _path(namespace: str, plural: str, name: str | None = None, *, core: bool = False) -> str:
    base = "/api/v1" if core else f"/apis/{API_VERSION}"
    path = f"{base}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


class Kube:
    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster config inside a pod, otherwise KUBECONFIG / ~/.kube/config."""
        configuration = k8s_client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(client_configuration=configuration)
        configuration.connection_pool_maxsize = 32
        return cls(k8s_client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> JSON | None:
        """One API call. Returns the decoded body, None for 404 on GET/DELETE; raises KubeError."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            response = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # An unreachable API server (restarting, network blip) is an API error like any
            # other: callers retry KubeErrors later. Raised as itself, it escaped them, and the
            # work was dropped: a wake-up due during a 30 s apiserver outage was never retried
            # and its session waited forever (tests/faults/test_apiserver_outage.py).
            problem = f"the API server could not be reached: {exc!r}"[:300]
            raise KubeError(0, problem, UNREACHABLE) from exc
        status = response.status
        response.release()
        if 200 <= status < 300:
            result: JSON = json.loads(raw) if raw else {}
            return result
        if status == 404 and method in {"GET", "DELETE"}:
            return None
        try:
            problem = json.loads(raw)
            raise KubeError(status, str(problem.get("message", "")), str(problem.get("reason", "")))
        except ValueError:
            raise KubeError(status, raw[:200].decode("utf-8", "replace")) from None

    # --- Headroom custom resources -----------------------------------------------------

    async def get_session(self, namespace: str, name: str) -> JSON | None:
        return await self.request("GET", _path(namespace, "agentsessions", name))

    async def patch_session_status(self, namespace: str, name: str, patch: JSON) -> JSON | None:
        path = _path(namespace, "agentsessions", name) + "/status"
        return await self._patch_status(path, patch)

    async def delete_session(self, namespace: str, name: str) -> None:
        await self.request("DELETE", _path(namespace, "agentsessions", name))

    async def patch_account_status(self, namespace: str, name: str, patch: JSON) -> JSON | None:
        path = _path(namespace, "claudeaccounts", name) + "/status"
        return await self._patch_status(path, patch)

    async def _patch_status(self, path: str, patch: JSON) -> JSON | None:
        try:
            return await self.request("PATCH", path, {"status": patch}, content_type=MERGE_PATCH)
        except KubeError as exc:
            if exc.status == 404:  # deleted meanwhile: nothing left to record on
                return None
            raise

    # --- kopf's peering object (HA) ------------------------------------------------------

    async def ensure_peering(self, namespace: str | None, name: str) -> bool:
        """Create kopf's peering object if it is missing (True if created). The operator makes
        it itself so that Git never owns an object whose status kopf rewrites every few seconds,
        and so that one `kubectl apply -k` installs everything (a KopfPeering listed next to
        its own CRD would fail the first apply)."""
        if namespace is None:
            path, kind = "/apis/kopf.dev/v1/clusterkopfpeerings", "ClusterKopfPeering"
        else:
            path, kind = (
                f"/apis/kopf.dev/v1/namespaces/{quote(namespace)}/kopfpeerings",
                "KopfPeering",
            )
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            await self.request("POST", path, body)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # --- core objects ------------------------------------------------------------------

    async def get(self, namespace: str, plural: str, name: str) -> JSON | None:
        return await self.request("GET", _path(namespace, plural, name, core=True))

    async def list(self, namespace: str | None, plural: str, label_selector: str) -> list[JSON]:
        path = f"/api/v1/{plural}" if namespace is None else _path(namespace, plural, core=True)
        found = await self.request("GET", path, query=[("labelSelector", label_selector)])
        return list((found or {}).get("items", []))

    async def create(self, namespace: str, plural: str, manifest: JSON) -> bool:
        """Create; False if it already exists (creation is idempotent by name)."""
        try:
            await self.request("POST", _path(namespace, plural, core=True), manifest)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def replace_or_create(self, namespace: str, plural: str, manifest: JSON) -> None:
        """Make an owned object match `manifest` (used for runtime Secrets)."""
        name = manifest["metadata"]["name"]
        if await self.create(namespace, plural, manifest):
            return
        path = _path(namespace, plural, name, core=True)
        await self.request("PATCH", path, manifest, content_type=MERGE_PATCH)

    async def patch(self, namespace: str, plural: str, name: str, patch: JSON) -> JSON | None:
        """A merge patch of an object the operator owns (never a user's spec)."""
        path = _path(namespace, plural, name, core=True)
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH)

    async def delete(self, namespace: str, plural: str, name: str) -> None:
        await self.request("DELETE", _path(namespace, plural, name, core=True))
