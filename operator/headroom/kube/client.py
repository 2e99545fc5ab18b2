"""The operator's only Kubernetes client: JSON in, JSON out, over one HTTP session
(headroom.kube.transport) configured by kubernetes_asyncio's kubeconfig and in-cluster
loaders. Typed models are skipped on purpose: the operator works on plain dicts (as kopf
hands them over) and deserializing thousands of pods into models costs CPU for nothing."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from headroom import API_VERSION
from headroom.kube.transport import Transport

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
UNREACHABLE = "Unreachable"  # KubeError.reason when no HTTP answer came back at all


class KubeError(Exception):
    """A Kubernetes API call failed. Carries the status code and the server's message (which
    never contains Secret data: we never send Secret data in a request we log). Callers catch
    the subclasses below for the answers they handle, and KubeError for "retry later"."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        # What was asked, set by Kube.request: the HTTP method and the resource it addressed
        # ("agentsessions/status", "pods"), so a refusal can be counted and named per kind.
        self.method = ""
        self.resource = ""

    @property
    def refused_write(self) -> bool:
        """A write (not a read) the server refuses as it is."""
        return self.refused and self.method not in {"", "GET"}

    @property
    def refused(self) -> bool:
        """The server refuses the request as it is (forbidden by RBAC, admission or a quota;
        invalid): the same request gets the same answer until something else changes."""
        return self.status in REFUSED_STATUSES


REFUSED_STATUSES = frozenset({400, 403, 422})


class KubeNotFound(KubeError):
    """404: the object (or its namespace) does not exist. GET and DELETE return None instead."""


class KubeConflict(KubeError):
    """409: the object exists already (create) or changed under a precondition."""


class KubeUnreachable(KubeError):
    """No HTTP answer at all (API server restarting, network blip): status 0."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message, UNREACHABLE)


# The status codes a caller handles by kind; any other failure is a plain KubeError.
_BY_STATUS: dict[int, type[KubeError]] = {404: KubeNotFound, 409: KubeConflict}


def error_of(status: int, raw: bytes) -> KubeError:
    """The exception for an HTTP answer outside 2xx, with the server's Status message."""
    kind = _BY_STATUS.get(status, KubeError)
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return kind(status, raw[:200].decode("utf-8", "replace"))
    return kind(status, str(problem.get("message", "")), str(problem.get("reason", "")))


CORE_API = "v1"  # the core group is served under /api/v1, every other group under /apis


def group_path(api_version: str) -> str:
    """The root of one API group version (also its discovery document)."""
    if api_version == CORE_API:
        return "/api/v1"
    return "/apis/" + "/".join(quote(part, safe="") for part in api_version.split("/"))


def api_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The one place an API path is built. Every segment is quoted on its own: a name or
    namespace holding "/", "?" or "%" cannot address another object or add a query."""
    parts = [group_path(api_version)]
    if namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(quote(plural, safe=""))
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(quote(subresource, safe=""))
    return "/".join(parts)


def resource_of(path: str) -> str:
    """The resource (and subresource) an API path addresses: "pods", "agentsessions/status".
    The inverse of api_path for the shapes it builds; "" for anything else."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return ""
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return ""
    return "/".join([rest[0], *rest[2:3]])


def account_path(namespace: str, name: str, subresource: str | None = None) -> str:
    """Accounts are keyed (namespace, name) with namespace "" for the cluster-scoped kind."""
    if not namespace:
        return api_path(API_VERSION, "clusterclaudeaccounts", None, name, subresource)
    return api_path(API_VERSION, "claudeaccounts", namespace, name, subresource)


Items = list[JSON]  # spelled once here: inside Kube, `list` names its method
KOPF_API = "kopf.dev/v1"  # kopf's peering objects
# Objects as metadata only (the API server's PartialObjectMetadata): no Secret data.
PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
PARTIAL_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class Api(Protocol):
    """How Kube reaches the API server (headroom.kube.transport; a fake in unit tests)."""

    async def call_api(
        self,
        path: str,
        method: str,
        *,
        query_params: list[tuple[str, str]] | None = None,
        header_params: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
    ) -> Any: ...

    async def close(self) -> None: ...


class Kube:
    def __init__(self, api: Api) -> None:
        self._api = api

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster config inside a pod, otherwise KUBECONFIG / ~/.kube/config."""
        configuration = k8s_client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            # kubernetes_asyncio ships this function without annotations (strict mypy would
            # reject the call); it is the library's own in-cluster loader, nothing to wrap.
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(client_configuration=configuration)
        return cls(Transport(configuration, pool=32))

    async def close(self) -> None:
        await self._api.close()

    async def stream(self, path: str, query: list[tuple[str, str]]) -> AsyncIterator[bytes]:
        """The body of a GET as it arrives (a pod's log, followed): chunks of bytes. Raises
        as `request` does for an answer outside 2xx, 404 included."""
        try:
            response = await self._api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "*/*"},
                stream=True,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeUnreachable(f"the API server could not be reached: {exc!r}"[:300]) from exc
        try:
            if not 200 <= response.status < 300:
                raise error_of(response.status, await response.read())
            async for chunk in response.content.iter_any():
                yield chunk
        finally:
            response.release()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        accept: str = "application/json",
        decode: bool = True,
    ) -> JSON | None:
        """One API call. Returns the decoded body (an empty one unless `decode`: a created
        or deleted pod's body is several kilobytes nobody reads), None for 404 on GET/DELETE.
        Raises
        KubeNotFound (404 of any other verb), KubeConflict (409), KubeUnreachable (no answer)
        or KubeError (any other status)."""
        headers = {"Accept": accept, "Content-Type": content_type}
        try:
            response = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
            )
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # An unreachable API server (restarting, network blip) is an API error like any
            # other: callers retry KubeErrors later. Raised as itself, it escaped them, and the
            # work was dropped: a wake-up due during a 30 s apiserver outage was never retried
            # and its session waited forever (tests/faults/test_apiserver_outage.py).
            raise KubeUnreachable(f"the API server could not be reached: {exc!r}"[:300]) from exc
        status = response.status
        response.release()
        if 200 <= status < 300:
            result: JSON = json.loads(raw) if raw and decode else {}
            return result
        if status == 404 and method in {"GET", "DELETE"}:
            return None
        error = error_of(status, raw)
        error.method, error.resource = method, resource_of(path)
        raise error

    # --- Headroom custom resources -----------------------------------------------------

    async def get_session(self, namespace: str, name: str) -> JSON | None:
        return await self.request("GET", api_path(API_VERSION, "agentsessions", namespace, name))

    async def patch_session_status(
        self, namespace: str, name: str, patch: JSON, resource_version: str = ""
    ) -> JSON | None:
        """With `resource_version`, the write is refused (KubeConflict) unless the session is
        still at that version: a pass that decided on a stale copy must read again."""
        path = api_path(API_VERSION, "agentsessions", namespace, name, "status")
        return await self._patch_status(path, patch, resource_version)

    async def delete_session(self, namespace: str, name: str) -> None:
        await self.request("DELETE", api_path(API_VERSION, "agentsessions", namespace, name))

    async def get_account(self, namespace: str, name: str) -> JSON | None:
        """A ClaudeAccount, or with namespace "" a ClusterClaudeAccount."""
        return await self.request("GET", account_path(namespace, name))

    async def patch_account_status(
        self, namespace: str, name: str, patch: JSON, resource_version: str = ""
    ) -> JSON | None:
        path = account_path(namespace, name, "status")
        return await self._patch_status(path, patch, resource_version)

    async def _patch_status(
        self, path: str, patch: JSON, resource_version: str = ""
    ) -> JSON | None:
        body: JSON = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            return await self.request("PATCH", path, body, content_type=MERGE_PATCH)
        except KubeNotFound:  # deleted meanwhile: nothing left to record on
            return None

    # --- kopf's peering object (HA) ------------------------------------------------------

    async def ensure_peering(self, namespace: str | None, name: str) -> bool:
        """Create kopf's peering object if it is missing (True if created). The operator makes
        it itself so that Git never owns an object whose status kopf rewrites every few seconds,
        and so that one `kubectl apply -k` installs everything (a KopfPeering listed next to
        its own CRD would fail the first apply)."""
        plural, kind = peering_kind(namespace is None)
        body = {"apiVersion": KOPF_API, "kind": kind, "metadata": {"name": name}}
        try:
            await self.request("POST", api_path(KOPF_API, plural, namespace), body)
        except KubeConflict:
            return False
        return True

    # --- core objects ------------------------------------------------------------------

    async def get(self, namespace: str, plural: str, name: str) -> JSON | None:
        return await self.request("GET", api_path(CORE_API, plural, namespace, name))

    async def list(self, namespace: str | None, plural: str, label_selector: str) -> list[JSON]:
        path = api_path(CORE_API, plural, namespace)
        found = await self.request("GET", path, query=[("labelSelector", label_selector)])
        return list((found or {}).get("items", []))

    async def list_metadata(self, namespace: str, plural: str) -> tuple[str, Items]:
        """(resourceVersion, items) of one core kind in one namespace, metadata only: a
        Secret's data never reaches the operator this way."""
        return await self.list_with_version(namespace, plural, accept=PARTIAL_METADATA_LIST)

    async def list_with_version(
        self,
        namespace: str | None,
        plural: str,
        label_selector: str = "",
        accept: str = "application/json",
    ) -> tuple[str, Items]:
        """(resourceVersion, items) of one core kind, to watch from (namespace None: all)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        path = api_path(CORE_API, plural, namespace)
        found = await self.request("GET", path, query=query, accept=accept) or {}
        return (found.get("metadata") or {}).get("resourceVersion", ""), found.get("items", [])

    async def watch_metadata(
        self, namespace: str, plural: str, version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[JSON]:
        """Watch events ({"type", "object"}) after `version`, metadata only."""
        events = self.watch(namespace, plural, version, "", timeout_seconds, PARTIAL_METADATA)
        async for event in events:
            yield event

    async def watch(
        self,
        namespace: str | None,
        plural: str,
        version: str,
        label_selector: str = "",
        timeout_seconds: int = 300,
        accept: str = "application/json",
    ) -> AsyncIterator[JSON]:
        """Watch events ({"type", "object"}) of one core kind after `version`, until the
        server ends the watch (after `timeout_seconds`). An ERROR event (410 Gone: the version
        is too old) is yielded like any other: the caller lists again."""
        query = [
            ("watch", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(timeout_seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        try:
            response = await self._api.call_api(
                api_path(CORE_API, plural, namespace),
                "GET",
                query_params=query,
                header_params={"Accept": accept},
                stream=True,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeUnreachable(f"the API server could not be reached: {exc!r}"[:300]) from exc
        try:
            if response.status != 200:
                raise error_of(response.status, await response.read())
            async for line in response.content:
                if line.strip():
                    event: JSON = json.loads(line)
                    yield event
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise KubeUnreachable(f"the watch broke off: {exc!r}"[:300]) from exc
        finally:
            response.release()

    async def create(self, namespace: str, plural: str, manifest: JSON) -> bool:
        """Create; False if it already exists (creation is idempotent by name)."""
        try:
            path = api_path(CORE_API, plural, namespace)
            await self.request("POST", path, manifest, decode=False)
        except KubeConflict:
            return False
        return True

    async def replace_or_create(self, namespace: str, plural: str, manifest: JSON) -> None:
        """Make an owned object match `manifest` (used for runtime Secrets)."""
        name = manifest["metadata"]["name"]
        if await self.create(namespace, plural, manifest):
            return
        path = api_path(CORE_API, plural, namespace, name)
        await self.request("PATCH", path, manifest, content_type=MERGE_PATCH)

    async def patch(self, namespace: str, plural: str, name: str, patch: JSON) -> JSON | None:
        """A merge patch of an object the operator owns (never a user's spec)."""
        path = api_path(CORE_API, plural, namespace, name)
        return await self.request("PATCH", path, patch, content_type=MERGE_PATCH)

    async def delete(self, namespace: str, plural: str, name: str) -> None:
        await self.request("DELETE", api_path(CORE_API, plural, namespace, name), decode=False)


def peering_kind(clusterwide: bool) -> tuple[str, str]:
    """(plural, kind) of kopf's peering object: one per namespace, or one for the cluster."""
    if clusterwide:
        return "clusterkopfpeerings", "ClusterKopfPeering"
    return "kopfpeerings", "KopfPeering"
