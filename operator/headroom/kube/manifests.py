"""Pure builders for the objects the operator owns besides agent pods (see agent_pod):
runtime Secrets, workspace PVCs, and the names and owner references they all use. No I/O."""

from __future__ import annotations

import hashlib
from typing import Any

from headroom import API_VERSION
from headroom.contract.pod import (
    ANN_ACCOUNT,
    LABEL_ACCOUNT,
    LABEL_MANAGED,
    LABEL_SESSION_UID,
    MANAGER,
)

JSON = dict[str, Any]


def runtime_secret_name(account: str) -> str:
    return bounded_name("headroom-account-" + account, 253)


def session_credential_name(session: str) -> str:
    """The Secret holding a cluster account's credential for one session's pods."""
    return bounded_name("headroom-credential-" + session, 253)


def workspace_claim_name(session: str) -> str:
    return bounded_name(session + "-workspace", 253)


def pod_name(session: str, attempt: int) -> str:
    return bounded_name(f"{session}-{attempt}", 63, keep_suffix=f"-{attempt}")


def bounded_name(name: str, limit: int, keep_suffix: str = "") -> str:
    """Kubernetes names are bounded; long ones are cut and made unique with a short hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: limit - len(keep_suffix) - 9].rstrip("-.")
    return f"{head}-{digest}{keep_suffix}"


def label_value(value: str) -> str | None:
    """Label values are at most 63 characters; longer names go only into annotations."""
    return value if len(value) <= 63 else None


def owner_reference(obj: JSON) -> JSON:
    meta = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def runtime_secret(account: JSON, key: str, value: bytes | str) -> JSON:
    """The Secret an agent pod reads: one key, owned by the ClaudeAccount. `value` is the
    base64 data exactly as it sits in the source Secret (never decoded here)."""
    name = account["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": runtime_secret_name(name),
            "namespace": account["metadata"]["namespace"],
            "labels": {LABEL_MANAGED: MANAGER, **_optional_label(LABEL_ACCOUNT, name)},
            "annotations": {ANN_ACCOUNT: name},
            "ownerReferences": [owner_reference(account)],
        },
        "data": {key: value if isinstance(value, str) else value.decode()},
    }


def session_credential(session: JSON, account_ref: str, key: str, value_b64: str) -> JSON:
    """A cluster account's credential copied into the session's namespace (a pod mounts
    Secrets of its own namespace only): one key, owned by the session, so it goes with it."""
    meta = session["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": session_credential_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {LABEL_MANAGED: MANAGER, LABEL_SESSION_UID: meta["uid"]},
            "annotations": {ANN_ACCOUNT: account_ref},
            "ownerReferences": [owner_reference(session)],
        },
        "data": {key: value_b64},
    }


def workspace_claim(session: JSON, size: str, storage_class: str | None) -> JSON:
    spec: JSON = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": workspace_claim_name(session["metadata"]["name"]),
            "namespace": session["metadata"]["namespace"],
            "labels": {LABEL_MANAGED: MANAGER, LABEL_SESSION_UID: session["metadata"]["uid"]},
            "ownerReferences": [owner_reference(session)],
        },
        "spec": spec,
    }


def _optional_label(key: str, value: str) -> dict[str, str]:
    fitted = label_value(value)
    return {key: fitted} if fitted else {}
