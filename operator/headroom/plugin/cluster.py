"""The plugin's view of the cluster: kubeconfig loading as kubectl does it (KUBECONFIG or
~/.kube/config, `--kubeconfig`, `--context`, the context's namespace) and the few reads and
writes the commands need, over the operator's own client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from headroom.kube.client import CORE_API, MERGE_PATCH, Kube, KubeError, api_path
from headroom.kube.transport import Transport
from headroom.plugin.errors import PluginError
from headroom.plugin.kinds import AGENT_SESSION, Kind

JSON = dict[str, Any]
FIELD_MANAGER = "kubectl-headroom"


@dataclass(frozen=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str | None


def context_namespace(target: Target) -> str:
    """The namespace kubectl would use: the flag, else the context's, else `default`."""
    if target.namespace:
        return target.namespace
    path = target.kubeconfig or default_kubeconfig()
    try:
        contexts, current = k8s_config.list_kube_config_contexts(path)
    except (k8s_config.ConfigException, OSError) as exc:
        raise PluginError(f"cannot read the kubeconfig {path}: {exc}") from exc
    chosen = current
    if target.context:
        chosen = next((c for c in contexts if c.get("name") == target.context), None)
        if chosen is None:
            raise PluginError(f"context {target.context!r} is not in the kubeconfig {path}")
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace or "default")


def default_kubeconfig() -> str:
    """KUBECONFIG as kubectl reads it (a list of files, merged), else ~/.kube/config."""
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


async def connect(target: Target) -> Cluster:
    configuration = k8s_client.Configuration()
    try:
        await k8s_config.load_kube_config(
            config_file=target.kubeconfig or default_kubeconfig(),
            context=target.context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (k8s_config.ConfigException, OSError) as exc:
        raise PluginError(f"cannot load the kubeconfig: {exc}") from exc
    return Cluster(Kube(Transport(configuration)))


class Cluster:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def close(self) -> None:
        await self.kube.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> JSON | None:
        try:
            return await self.kube.request(method, path, **kwargs)
        except KubeError as exc:
            raise PluginError(f"{method} {path} failed: {exc}") from exc

    async def items(self, kind: Kind, namespace: str) -> list[JSON]:
        where = namespace if kind.namespaced else None
        found = await self.call("GET", api_path(kind.api_version, kind.plural, where))
        if found is None:  # a collection is 404 only when its kind is not served at all
            raise PluginError(
                f"the cluster does not know {kind.plural}.{kind.api_version.split('/')[0]}: "
                "are Headroom's CRDs installed?"
            )
        return list(found.get("items") or [])

    async def get(self, kind: Kind, namespace: str, name: str) -> JSON:
        where = namespace if kind.namespaced else None
        found = await self.call("GET", api_path(kind.api_version, kind.plural, where, name))
        if found is None:
            scope = f" in namespace {namespace}" if kind.namespaced else ""
            raise PluginError(f"{kind.name} {name!r} not found{scope}")
        return found

    async def merge_patch(self, kind: Kind, namespace: str, name: str, patch: JSON) -> JSON:
        await self.get(kind, namespace, name)  # a clear "not found" before any write
        where = namespace if kind.namespaced else None
        path = api_path(kind.api_version, kind.plural, where, name)
        done = await self.call(
            "PATCH",
            path,
            body=patch,
            content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )
        return done or {}

    async def pod(self, namespace: str, name: str) -> JSON | None:
        return await self.call("GET", api_path(CORE_API, "pods", namespace, name))

    async def session_events(self, namespace: str, name: str) -> list[JSON]:
        selector = f"involvedObject.kind={AGENT_SESSION.name},involvedObject.name={name}"
        path = api_path(CORE_API, "events", namespace)
        found = await self.call("GET", path, query=[("fieldSelector", selector)])
        return list((found or {}).get("items") or [])

    async def pod_log(
        self, namespace: str, pod: str, options: Sequence[tuple[str, str]]
    ) -> AsyncIterator[bytes]:
        path = api_path(CORE_API, "pods", namespace, pod, "log")
        try:
            async for chunk in self.kube.stream(path, list(options)):
                yield chunk
        except KubeError as exc:
            raise PluginError(f"cannot read the log of pod {pod}: {exc.message or exc}") from exc
