"""The credential of a ClusterClaudeAccount, staged for one session's pods.

A pod mounts Secrets of its own namespace only, and a cluster account's Secret lives in the
operator's namespace. So each session placed on a cluster account gets a Secret of its own
in its namespace: one key, owned by the session, rewritten only when the account or the
credential changes, and deleted when the session finishes. Whoever can read Secrets in a
namespace a cluster account admits can read this copy: spec.allowedNamespaces is the
boundary of trust, as the docs say.
"""

from __future__ import annotations

from typing import Any

from headroom.core.accounts import CLUSTER_REF_PREFIX, Account
from headroom.kube import manifests
from headroom.reconcilers.account import credentials_hash, credentials_of
from headroom.reconcilers.runtime import ClusterCredential, Runtime

JSON = dict[str, Any]


class CredentialUnavailable(Exception):
    """The cluster account's Secret cannot be read just now (the account reconciler will
    say why in its status; placement then skips the account)."""


def secret_for(session: str, account: Account) -> str:
    """The Secret an attempt on `account` mounts ("" means the account's runtime Secret)."""
    return manifests.session_credential_name(session) if account.cluster else ""


async def stage(rt: Runtime, session: JSON, account: Account) -> None:
    credential = rt.cluster_credentials.get(account.name) or await _read(rt, account)
    meta = session["metadata"]
    key = (meta["namespace"], meta["name"])
    if rt.staged_credentials.get(key) == (account.ref, credential.digest):
        return
    manifest = manifests.session_credential(
        session, account.ref, credential.key, credential.value_b64
    )
    await rt.kube.replace_or_create(meta["namespace"], "secrets", manifest)
    rt.staged_credentials[key] = (account.ref, credential.digest)


async def remove(rt: Runtime, session: JSON, status: JSON) -> None:
    """A finished session needs no credential: delete its copy, if it ever had one."""
    meta = session["metadata"]
    key = (meta["namespace"], meta["name"])
    used = [status.get("account") or ""] + [
        a.get("account") or "" for a in status.get("attempts") or []
    ]
    if key in rt.staged_credentials or any(u.startswith(CLUSTER_REF_PREFIX) for u in used):
        name = manifests.session_credential_name(meta["name"])
        await rt.kube.delete(meta["namespace"], "secrets", name)
        rt.staged_credentials.pop(key, None)


async def _read(rt: Runtime, account: Account) -> ClusterCredential:
    """After a restart, before the account's first pass: read its Secret once."""
    body = await rt.kube.get_account("", account.name)
    spec = (body or {}).get("spec") or {}
    ref = ((spec.get("credentials") or {}).get("secretRef") or {}).get("name", "")
    namespace = rt.settings.cluster_account_namespace
    secret = await rt.kube.get(namespace, "secrets", ref) if ref else None
    value, key, _, message = credentials_of(spec, secret, namespace)
    if value is None:
        raise CredentialUnavailable(message)
    credential = ClusterCredential(credentials_hash(value), key, value)
    rt.cluster_credentials[account.name] = credential
    return credential
