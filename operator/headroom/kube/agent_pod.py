"""The agent Pod of one attempt: what the operator owns (the pod contract, written once in
`headroom.contract.pod`) merged with what the user shapes (env, resources, podTemplate,
repositories, Claude Code options). Pure, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from headroom.contract import pod as c
from headroom.core.accounts import CredentialType, ref_key
from headroom.core.task import Repo, repos_of
from headroom.kube.manifests import (
    label_value,
    owner_reference,
    pod_name,
    runtime_secret_name,
)

JSON = dict[str, Any]
# Keys of spec.claude handed to the runner unchanged; the rest are resolved here.
CLAUDE_PASSTHROUGH = (
    "allowedTools",
    "disallowedTools",
    "appendSystemPrompt",
    "systemPrompt",
    "settings",
    "outputSchema",
    "effort",
    "fallbackModel",
)


@dataclass(frozen=True)
class PodSettings:
    """Operator-wide knobs for agent pods (flags of `headroom operator`)."""

    default_image: str = "ghcr.io/headroom-dev/headroom-agent:0.1.0"
    anthropic_base_url: str | None = None
    # Claude Code's --permission-mode for every agent unless the session sets its own; unset
    # keeps the CLI's default, which asks before edits and so stalls an unattended agent.
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
    account: str  # the account's ref: a ClaudeAccount's name or ClusterClaudeAccount/<name>
    credential_type: CredentialType
    credential_key: str
    claude_session_id: str
    expect_transcript: bool
    auth_path: str
    workspace_claim: str
    clone_repos: bool = True  # False once an earlier attempt cloned them
    budget_left_usd: float | None = None
    deadline_seconds: int | None = None  # what is left of spec.timeout, as a backstop
    # The Secret in the session's namespace that holds the credential; "" means the
    # ClaudeAccount's own runtime Secret.
    credential_secret: str = ""


def agent_pod(session: JSON, attempt: Attempt, settings: PodSettings) -> JSON:
    spec = session.get("spec") or {}
    template = spec.get("podTemplate") or {}
    repos = repos_of(spec)
    volumes, mounts = _base_volumes(attempt), _base_mounts()
    repo_volumes, repo_mounts, repo_doc = _repo_parts(repos)
    volumes += repo_volumes
    env = _user_env(spec) + _operator_env(spec, attempt, settings, repo_doc)
    extra_volumes, extra_mounts = _credential_parts(attempt, env)
    mcp_volumes, mcp_mounts = _mcp_parts(spec)
    scrub_volumes, scrub_mounts = _scrub_parts(spec, env)
    volumes += extra_volumes + mcp_volumes + scrub_volumes
    agent_mounts = mounts + repo_mounts + extra_mounts + mcp_mounts + scrub_mounts
    template_spec = template.get("spec") or {}
    image = spec.get("image") or settings.default_image
    agent = {
        "name": c.AGENT_CONTAINER,
        "image": image,
        "command": ["headroom", "agent"],
        "envFrom": [dict(e) for e in spec.get("envFrom") or []],
        "env": env,
        "volumeMounts": agent_mounts + [dict(m) for m in template_spec.get("volumeMounts") or []],
        "resources": _resources(spec, settings),
        **_container_basics(),
    }
    if not agent["envFrom"]:
        del agent["envFrom"]
    pod_spec: JSON = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": _pod_security(settings, template_spec),
        "containers": [agent],
        "volumes": volumes + [dict(v) for v in template_spec.get("volumes") or []],
    }
    init: list[JSON] = []
    if attempt.credential_type is not CredentialType.CREDENTIALS_FILE:
        init.append(_credential_container(image))
    if repos and attempt.clone_repos:
        init.append(_clone_container(image, repo_doc, repo_mounts, agent))
    if init:
        pod_spec["initContainers"] = init
    if attempt.deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = max(1, attempt.deadline_seconds)
    _apply_scheduling(pod_spec, settings, template_spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _pod_metadata(session, attempt, template.get("metadata") or {}),
        "spec": pod_spec,
    }


def _container_basics() -> JSON:
    return {
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "terminationMessagePath": c.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }


def _operator_env(
    spec: JSON, attempt: Attempt, settings: PodSettings, repo_doc: list[JSON]
) -> list[JSON]:
    """Last in the list, so a kubelet gives them precedence over anything from envFrom."""
    env: list[JSON] = [
        {"name": c.SESSION_ID, "value": attempt.claude_session_id},
        {"name": c.PROMPT, "value": spec["prompt"]},
        {"name": c.ATTEMPT, "value": str(attempt.number)},
        {"name": c.EXPECT_TRANSCRIPT, "value": str(attempt.expect_transcript).lower()},
        {"name": c.WORKDIR, "value": c.WORKSPACE},
        {"name": c.CONFIG_DIR_ENV, "value": c.CONFIG_DIR},
        {"name": c.HOME_ENV, "value": c.HOME},
        {"name": c.NO_NONESSENTIAL_TRAFFIC_ENV, "value": "1"},
    ]
    if spec.get("model"):
        env.append({"name": c.MODEL, "value": spec["model"]})
    if spec.get("maxTurns"):
        env.append({"name": c.MAX_TURNS, "value": str(spec["maxTurns"])})
    env.append({"name": c.BASE_URL_ENV, "value": settings.anthropic_base_url or c.DEFAULT_API_URL})
    claude = spec.get("claude") or {}
    mode = claude.get("permissionMode") or settings.permission_mode
    if mode:
        env.append({"name": c.PERMISSION_MODE, "value": mode})
    options = _claude_options(claude, attempt)
    if options:
        env.append({"name": c.CLAUDE_OPTIONS, "value": json.dumps(options, sort_keys=True)})
    if claude.get("mcpServers"):
        env.append({"name": c.MCP_CONFIG, "value": f"{c.MCP_DIR}/{c.MCP_FILE}"})
    if repo_doc:
        env.append({"name": c.REPOS, "value": json.dumps(repo_doc, sort_keys=True)})
        env.append({"name": c.GIT_CREDENTIALS_ENV, "value": c.GIT_CREDENTIALS_DIR})
        env += _commit_identity(spec)
    return env


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Headroom agent",
    "GIT_AUTHOR_EMAIL": "agent@headroom.invalid",
    "GIT_COMMITTER_NAME": "Headroom agent",
    "GIT_COMMITTER_EMAIL": "agent@headroom.invalid",
}


def _commit_identity(spec: JSON) -> list[JSON]:
    """Who the agent's commits are by, unless spec.env says: git refuses to commit without."""
    given = {e.get("name") for e in spec.get("env") or []}
    return [{"name": k, "value": v} for k, v in GIT_IDENTITY.items() if k not in given]


def _claude_options(claude: JSON, attempt: Attempt) -> JSON:
    options = {k: claude[k] for k in CLAUDE_PASSTHROUGH if claude.get(k) not in (None, [], "")}
    if attempt.budget_left_usd is not None:
        options["maxBudgetUSD"] = round(attempt.budget_left_usd, 6)
    if claude.get("mcpServers"):
        # A config kept in a Secret holds tokens: the runner scrubs its values.
        options["mcpConfigSecret"] = bool(claude["mcpServers"].get("secretKeyRef"))
    return options


def _user_env(spec: JSON) -> list[JSON]:
    return [dict(e) for e in spec.get("env") or []]


def _credential_parts(attempt: Attempt, env: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """The account's credential: a file for CredentialsFile accounts (Claude Code owns and
    rewrites it), else a file the `credential` init container stages on a memory volume,
    which the runner unlinks and hands to Claude Code on a pipe: no variable of the agent
    container holds it. Every credential variable is set empty, so that an envFrom source
    that happens to hold one cannot make Claude Code log in as someone else."""
    secret = attempt.credential_secret or runtime_secret_name(attempt.account)
    volumes: list[JSON] = []
    mounts: list[JSON] = []
    if attempt.credential_type is CredentialType.CREDENTIALS_FILE:
        mounts.append({"name": "credentials", "mountPath": c.CREDENTIALS_DIR, "readOnly": True})
        volumes.append(
            {"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o400}}
        )
        path = f"{c.CREDENTIALS_DIR}/{attempt.credential_key}"
        env.append({"name": c.CREDENTIALS_FILE, "value": path})
    else:
        volumes += _staging_volumes(secret, attempt.credential_key)
        mounts.append({"name": STAGED_VOLUME, "mountPath": c.STAGED_CREDENTIAL_DIR})
        env.append({"name": c.STAGED_CREDENTIAL, "value": STAGED_PATH})
        env.append({"name": c.STAGED_CREDENTIAL_TYPE, "value": str(attempt.credential_type)})
    env.extend({"name": name, "value": ""} for name in c.CREDENTIAL_ENV)
    return volumes, mounts


STAGED_VOLUME = f"{c.OPERATOR_VOLUME_PREFIX}credential"
SOURCE_VOLUME = f"{c.OPERATOR_VOLUME_PREFIX}credential-source"
STAGED_PATH = f"{c.STAGED_CREDENTIAL_DIR}/{c.STAGED_CREDENTIAL_NAME}"


def _staging_volumes(secret: str, key: str) -> list[JSON]:
    """The runtime Secret's one key (mounted in the init container only) and the memory
    volume it is staged on (never written to the node's disk; a few bytes)."""
    items = [{"key": key, "path": c.STAGED_CREDENTIAL_NAME}]
    return [
        {
            "name": SOURCE_VOLUME,
            "secret": {"secretName": secret, "items": items, "defaultMode": 0o400},
        },
        {"name": STAGED_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]


def _credential_container(image: str) -> JSON:
    """Copies the credential onto the memory volume; the agent container never mounts the
    Secret."""
    source = f"{c.CREDENTIAL_SOURCE_DIR}/{c.STAGED_CREDENTIAL_NAME}"
    return {
        "name": c.CREDENTIAL_CONTAINER,
        "image": image,
        "command": ["headroom", "credential"],
        "env": [
            {"name": c.CREDENTIAL_SOURCE, "value": source},
            {"name": c.STAGED_CREDENTIAL, "value": STAGED_PATH},
        ],
        "volumeMounts": [
            {"name": SOURCE_VOLUME, "mountPath": c.CREDENTIAL_SOURCE_DIR, "readOnly": True},
            {"name": STAGED_VOLUME, "mountPath": c.STAGED_CREDENTIAL_DIR},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"memory": "64Mi"},
        },
        **_container_basics(),
    }


def _base_volumes(attempt: Attempt) -> list[JSON]:
    return [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": attempt.workspace_claim}},
        {"name": "claude-config", "emptyDir": {}},
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]


def _base_mounts() -> list[JSON]:
    return [
        {"name": "workspace", "mountPath": c.WORKSPACE},
        {"name": "claude-config", "mountPath": c.CONFIG_DIR},
        # A volume mount, not a symlink: Claude Code owns its config dir, and the transcript
        # tree must outlive the pod so another account can --resume it.
        {
            "name": "workspace",
            "mountPath": c.CONFIG_DIR + "/projects",
            "subPath": c.PROJECTS_SUBPATH,
        },
        {"name": "home", "mountPath": c.HOME},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def _repo_parts(repos: list[Repo]) -> tuple[list[JSON], list[JSON], list[JSON]]:
    """Volumes and mounts of the repositories' credentials, and the runner's view of them."""
    volumes: list[JSON] = []
    mounts: list[JSON] = []
    doc: list[JSON] = []
    for i, repo in enumerate(repos):
        entry: JSON = {
            "url": repo.url,
            "path": repo.path,
            "ref": repo.ref,
            "depth": repo.depth,
            "branch": repo.branch,
            "credentials": None,
        }
        creds = repo.credentials
        if creds is not None:
            directory = f"{c.GIT_CREDENTIALS_DIR}/{i}"
            items = [{"key": creds.key, "path": "secret"}]
            if creds.known_hosts_key:
                items.append({"key": creds.known_hosts_key, "path": "known_hosts"})
            name = f"{c.OPERATOR_VOLUME_PREFIX}git-{i}"
            # ssh refuses a private key its own user shares with the group; a token file is
            # read through the group (fsGroup) like every other mounted Secret.
            mode = 0o400 if creds.ssh else 0o440
            volumes.append(
                {
                    "name": name,
                    "secret": {"secretName": creds.secret, "items": items, "defaultMode": mode},
                }
            )
            mounts.append({"name": name, "mountPath": directory, "readOnly": True})
            entry["credentials"] = {
                "kind": "ssh" if creds.ssh else "token",
                "file": f"{i}/secret",
                "knownHosts": f"{i}/known_hosts" if creds.known_hosts_key else None,
            }
        doc.append(entry)
    return volumes, mounts, doc


def _mcp_parts(spec: JSON) -> tuple[list[JSON], list[JSON]]:
    source = (spec.get("claude") or {}).get("mcpServers")
    if not source:
        return [], []
    name = f"{c.OPERATOR_VOLUME_PREFIX}mcp"
    if source.get("secretKeyRef"):
        ref = source["secretKeyRef"]
        items = [{"key": ref["key"], "path": c.MCP_FILE}]
        volume = {"name": name, "secret": {"secretName": ref["name"], "items": items}}
    else:
        ref = source["configMapKeyRef"]
        items = [{"key": ref["key"], "path": c.MCP_FILE}]
        volume = {"name": name, "configMap": {"name": ref["name"], "items": items}}
    return [volume], [{"name": name, "mountPath": c.MCP_DIR, "readOnly": True}]


def _scrub_parts(spec: JSON, env: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """Tell the runner which values are secret: variables from secretKeyRef by name, envFrom
    Secrets (whose keys are not known here) as files it can read."""
    names = [
        e["name"] for e in spec.get("env") or [] if (e.get("valueFrom") or {}).get("secretKeyRef")
    ]
    volumes: list[JSON] = []
    mounts: list[JSON] = []
    for i, source in enumerate(spec.get("envFrom") or []):
        ref = source.get("secretRef")
        if not ref:
            continue
        name = f"{c.OPERATOR_VOLUME_PREFIX}scrub-{i}"
        secret: JSON = {"secretName": ref["name"], "optional": bool(ref.get("optional"))}
        volumes.append({"name": name, "secret": secret})
        mounts.append({"name": name, "mountPath": f"{c.SCRUB_MOUNT_DIR}/{i}", "readOnly": True})
    if names:
        env.append({"name": c.SCRUB_ENV, "value": ",".join(names)})
    if volumes:
        env.append({"name": c.SCRUB_DIR, "value": c.SCRUB_MOUNT_DIR})
    return volumes, mounts


def _clone_container(
    image: str, repo_doc: list[JSON], repo_mounts: list[JSON], agent: JSON
) -> JSON:
    return {
        "name": c.CLONE_CONTAINER,
        "image": image,
        "command": ["headroom", "clone"],
        "env": [
            {"name": c.REPOS, "value": json.dumps(repo_doc, sort_keys=True)},
            {"name": c.GIT_CREDENTIALS_ENV, "value": c.GIT_CREDENTIALS_DIR},
            {"name": c.WORKDIR, "value": c.WORKSPACE},
            {"name": c.HOME_ENV, "value": c.HOME},
        ],
        "volumeMounts": [
            {"name": "workspace", "mountPath": c.WORKSPACE},
            {"name": "home", "mountPath": c.HOME},
            {"name": "tmp", "mountPath": "/tmp"},
            *repo_mounts,
        ],
        "resources": agent["resources"],
        **_container_basics(),
    }


def _resources(spec: JSON, settings: PodSettings) -> JSON:
    wanted = spec.get("resources") or {}
    requests = {"cpu": settings.cpu_request, "memory": settings.memory_request}
    limits = {"memory": settings.memory_limit}
    requests.update({k: str(v) for k, v in (wanted.get("requests") or {}).items()})
    limits.update({k: str(v) for k, v in (wanted.get("limits") or {}).items()})
    return {"requests": requests, "limits": limits}


def _pod_security(settings: PodSettings, template_spec: JSON) -> JSON:
    defaults: JSON = {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {**defaults, **(template_spec.get("securityContext") or {})}


def _apply_scheduling(pod_spec: JSON, settings: PodSettings, template_spec: JSON) -> None:
    selector = template_spec.get("nodeSelector") or settings.node_selector
    if selector:
        pod_spec["nodeSelector"] = dict(selector)
    tolerations = [dict(t) for t in settings.tolerations]
    tolerations += [dict(t) for t in template_spec.get("tolerations") or []]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    for key in ("affinity", "priorityClassName", "runtimeClassName", "imagePullSecrets"):
        if template_spec.get(key):
            pod_spec[key] = template_spec[key]


def _pod_metadata(session: JSON, attempt: Attempt, template_meta: JSON) -> JSON:
    meta = session["metadata"]
    labels = {
        **(template_meta.get("labels") or {}),
        c.LABEL_MANAGED: c.MANAGER,
        c.LABEL_SESSION_UID: meta["uid"],
        c.LABEL_ATTEMPT: str(attempt.number),
    }
    namespace, account = ref_key(meta["namespace"], attempt.account)
    account_label = label_value(account)
    if account_label:
        labels[c.LABEL_ACCOUNT if namespace else c.LABEL_CLUSTER_ACCOUNT] = account_label
    return {
        "name": pod_name(meta["name"], attempt.number),
        "namespace": meta["namespace"],
        "labels": labels,
        "annotations": {
            **(template_meta.get("annotations") or {}),
            c.ANN_SESSION: meta["name"],
            c.ANN_ACCOUNT: attempt.account,
            c.ANN_AUTH_PATH: attempt.auth_path,
        },
        "ownerReferences": [owner_reference(session)],
    }
