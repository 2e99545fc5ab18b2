"""Pure builders for the objects the operator owns: runtime Secrets, workspace PVCs and
agent Pods (BRIEF section 3, the pod contract). No I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from headroom import API_VERSION
from headroom.core.accounts import CredentialType

JSON = dict[str, Any]

LABEL_MANAGED = "app.kubernetes.io/managed-by"
LABEL_SESSION_UID = "headroom.dev/session-uid"
LABEL_ACCOUNT = "headroom.dev/account"
LABEL_ATTEMPT = "headroom.dev/attempt"
ANN_ACCOUNT = "headroom.dev/account"
ANN_SESSION = "headroom.dev/session"
ANN_AUTH_PATH = "headroom.dev/auth-path"
MANAGER = "headroom"

CONFIG_DIR = "/var/lib/headroom/claude"  # CLAUDE_CONFIG_DIR: an emptyDir, writable, per pod
WORKSPACE = "/workspace"
PROJECTS_SUBPATH = ".claude-projects"  # transcripts on the PVC, mounted at CONFIG_DIR/projects
CREDENTIALS_DIR = "/var/run/headroom/credentials"

ENV_FOR_TYPE = {
    CredentialType.OAUTH_TOKEN: "CLAUDE_CODE_OAUTH_TOKEN",
    CredentialType.API_KEY: "ANTHROPIC_API_KEY",
}


def runtime_secret_name(account: str) -> str:
    return bounded_name("headroom-account-" + account, 253)


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


@dataclass(frozen=True)
class PodSettings:
    """Operator-wide knobs for agent pods (flags of `headroom operator`)."""

    default_image: str = "ghcr.io/headroom-dev/headroom-agent:0.1.0"
    anthropic_base_url: str | None = None
    # Claude Code's --permission-mode for every agent (HEADROOM_PERMISSION_MODE); unset keeps
    # the CLI's default, which asks before edits and so stalls an unattended agent.
    permission_mode: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[JSON, ...] = ()
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    run_as_user: int = 10001


@dataclass(frozen=True)
class Attempt:
    """Everything that varies from one agent pod to the next."""

    number: int
    account: str
    credential_type: CredentialType
    credential_key: str
    claude_session_id: str
    expect_transcript: bool
    auth_path: str


def agent_pod(session: JSON, attempt: Attempt, settings: PodSettings) -> JSON:
    meta, spec = session["metadata"], session["spec"]
    secret = runtime_secret_name(attempt.account)
    env: list[JSON] = [
        {"name": "HEADROOM_SESSION_ID", "value": attempt.claude_session_id},
        {"name": "HEADROOM_PROMPT", "value": spec["prompt"]},
        {"name": "HEADROOM_ATTEMPT", "value": str(attempt.number)},
        {"name": "HEADROOM_EXPECT_TRANSCRIPT", "value": str(attempt.expect_transcript).lower()},
        {"name": "HEADROOM_WORKDIR", "value": WORKSPACE},
        {"name": "CLAUDE_CONFIG_DIR", "value": CONFIG_DIR},
        {"name": "HOME", "value": "/home/agent"},
        {"name": "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "value": "1"},
    ]
    if spec.get("model"):
        env.append({"name": "HEADROOM_MODEL", "value": spec["model"]})
    if spec.get("maxTurns"):
        env.append({"name": "HEADROOM_MAX_TURNS", "value": str(spec["maxTurns"])})
    if settings.anthropic_base_url:
        env.append({"name": "ANTHROPIC_BASE_URL", "value": settings.anthropic_base_url})
    if settings.permission_mode:
        env.append({"name": "HEADROOM_PERMISSION_MODE", "value": settings.permission_mode})
    mounts: list[JSON] = [
        {"name": "workspace", "mountPath": WORKSPACE},
        {"name": "claude-config", "mountPath": CONFIG_DIR},
        # A volume mount, not a symlink: Claude Code owns its config dir (seed 000), and the
        # transcript tree must outlive the pod so another account can --resume it.
        {"name": "workspace", "mountPath": CONFIG_DIR + "/projects", "subPath": PROJECTS_SUBPATH},
        {"name": "home", "mountPath": "/home/agent"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[JSON] = [
        {
            "name": "workspace",
            "persistentVolumeClaim": {"claimName": workspace_claim_name(meta["name"])},
        },
        {"name": "claude-config", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if attempt.credential_type is CredentialType.CREDENTIALS_FILE:
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
        volumes.append(
            {"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o400}}
        )
        env.append(
            {
                "name": "HEADROOM_CREDENTIALS_FILE",
                "value": f"{CREDENTIALS_DIR}/{attempt.credential_key}",
            }
        )
    else:
        env.append(
            {
                "name": ENV_FOR_TYPE[attempt.credential_type],
                "valueFrom": {"secretKeyRef": {"name": secret, "key": attempt.credential_key}},
            }
        )
    pod_spec: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "agent",
                "image": spec.get("image") or settings.default_image,
                "command": ["headroom", "agent"],
                "env": env,
                "volumeMounts": mounts,
                "resources": {
                    "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                    "limits": {"memory": settings.memory_limit},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }
        ],
        "volumes": volumes,
    }
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta["name"], attempt.number),
            "namespace": meta["namespace"],
            "labels": {
                LABEL_MANAGED: MANAGER,
                LABEL_SESSION_UID: meta["uid"],
                LABEL_ATTEMPT: str(attempt.number),
                **_optional_label(LABEL_ACCOUNT, attempt.account),
            },
            "annotations": {
                ANN_SESSION: meta["name"],
                ANN_ACCOUNT: attempt.account,
                ANN_AUTH_PATH: attempt.auth_path,
            },
            "ownerReferences": [owner_reference(session)],
        },
        "spec": pod_spec,
    }


def _optional_label(key: str, value: str) -> dict[str, str]:
    fitted = label_value(value)
    return {key: fitted} if fitted else {}
