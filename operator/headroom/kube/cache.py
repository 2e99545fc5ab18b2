"""What the watches last delivered, kept by resourceVersion, so that a pass reads an object
without asking the API server again.

A cached copy may be older than the server's (the watch lags, another client wrote). Readers
make that harmless rather than rare: a hit is used only where a stale copy can cost a retry,
never a wrong write (status writes carry the copy's resourceVersion as a precondition, pods
are named by attempt), and a miss is read from the API server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
Key = tuple[str, str]


def newer(candidate: str, held: str) -> bool:
    """True unless `candidate` is known to be older than `held`. resourceVersions are opaque;
    every API server on etcd hands out increasing numbers, which a watch that lags behind a
    write's own answer must not undo. Anything else is taken as news."""
    if candidate.isdigit() and held.isdigit():
        return int(candidate) >= int(held)
    return True


def version_of(body: JSON) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


class ObjectCache:
    """(namespace, name) -> the newest body seen, optionally slimmed to what readers need."""

    def __init__(self, slim: Callable[[JSON], JSON] | None = None) -> None:
        self._slim = slim
        self._objects: dict[Key, JSON] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def put(self, body: JSON) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        held = self._objects.get(key)
        if held is not None and not newer(version_of(body), version_of(held)):
            return
        self._objects[key] = self._slim(body) if self._slim else body

    def get(self, namespace: str, name: str) -> JSON | None:
        return self._objects.get((namespace, name))

    def drop(self, namespace: str, name: str) -> None:
        self._objects.pop((namespace, name), None)


POD_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "creationTimestamp",
    "deletionTimestamp",
)


def slim_pod(pod: JSON) -> JSON:
    """What a session pass reads of its pod (its status, names, node): a few hundred bytes of
    the several kilobytes a pod's spec and managed fields take."""
    meta = pod.get("metadata") or {}
    return {
        "metadata": {k: meta[k] for k in POD_METADATA if k in meta},
        "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
        "status": pod.get("status") or {},
    }


def without_managed_fields(body: JSON) -> JSON:
    """An object without its managedFields, which nothing in the operator reads and which
    can be larger than the rest of it."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class SecretCache:
    """Secrets as last read, valid until a watch reports a newer version. The watches that
    report them carry metadata only (or are filtered to the Secrets accounts read), so the
    read itself stays a GET, made again only when the Secret changed. Held in memory like the
    credentials the operator copies; never logged."""

    def __init__(self) -> None:
        self._read: dict[Key, tuple[str, JSON]] = {}
        self._seen: dict[Key, str] = {}

    def seen(self, namespace: str, name: str, version: str | None) -> None:
        """A watch reported the Secret at `version` (None: deleted)."""
        self._seen[(namespace, name)] = version or ""
        if version is None:
            self._read.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> JSON | None:
        found = self._read.get((namespace, name))
        if found is None:
            return None
        version, body = found
        reported = self._seen.get((namespace, name))
        if reported is None or reported == version:
            return body
        if reported.isdigit() and version.isdigit() and int(version) > int(reported):
            return body  # read after the change the watch reported
        return None  # changed (or deleted) since it was read

    def put(self, namespace: str, name: str, body: JSON) -> None:
        self._read[(namespace, name)] = (version_of(body), body)
