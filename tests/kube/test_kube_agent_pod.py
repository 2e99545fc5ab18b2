"""The agent pod builder (pure): what the operator owns, and every field a user shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from tests.support.claude_options import PASSED_THROUGH

from headroom.contract import pod as contract
from headroom.controllers.main import parse_args
from headroom.core.accounts import CredentialType
from headroom.core.task import SpecError
from headroom.kube import agent_pod
from headroom.kube.agent_pod import Attempt, PodSettings

JSON = dict[str, Any]
SESSION: JSON = {
    "apiVersion": "headroom.dev/v1alpha1",
    "kind": "AgentSession",
    "metadata": {"name": "s1", "namespace": "agents", "uid": "u-1"},
    "spec": {"prompt": "p"},
}
ATTEMPT = Attempt(
    number=1,
    account="alice",
    credential_type=CredentialType.OAUTH_TOKEN,
    credential_key="token",
    claude_session_id="6f1c0000-0000-4000-8000-000000000000",
    expect_transcript=False,
    auth_path="primary",
    workspace_claim="s1-workspace",
)


def build(spec: JSON | None = None, attempt: Attempt = ATTEMPT, **settings: Any) -> JSON:
    session = {**SESSION, "spec": {"prompt": "p", **(spec or {})}}
    return agent_pod.agent_pod(session, attempt, PodSettings(**settings))


def agent(pod: JSON) -> JSON:
    (container,) = pod["spec"]["containers"]
    assert container["name"] == contract.AGENT_CONTAINER
    return container


def env_of(pod: JSON) -> dict[str, Any]:
    """Name -> value as a kubelet resolves duplicates: the last entry wins."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in agent(pod)["env"]}


def mounts_of(container: JSON) -> dict[str, JSON]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def volumes_of(pod: JSON) -> dict[str, JSON]:
    return {v["name"]: v for v in pod["spec"]["volumes"]}


# -- operator-wide settings --------------------------------------------------------------


def test_permission_mode_flag_reaches_the_runner() -> None:
    assert env_of(build(permission_mode="bypassPermissions"))[contract.PERMISSION_MODE] == (
        "bypassPermissions"
    )


def test_no_permission_mode_keeps_the_cli_default() -> None:
    assert contract.PERMISSION_MODE not in env_of(build())


def test_a_session_permission_mode_wins_over_the_flag() -> None:
    pod = build({"claude": {"permissionMode": "acceptEdits"}}, permission_mode="bypassPermissions")
    assert env_of(pod)[contract.PERMISSION_MODE] == "acceptEdits"


def test_resource_flags_are_the_defaults_a_session_overrides() -> None:
    from headroom.controllers.main import settings_from

    flags = ["--agent-cpu-request", "1", "--agent-memory-request", "1Gi",
             "--agent-memory-limit", "3Gi"]  # fmt: skip
    pods = settings_from(parse_args(flags)).pods
    assert agent(agent_pod.agent_pod({**SESSION}, ATTEMPT, pods))["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "3Gi"},
    }


def test_operator_flag_accepts_only_modes_the_cli_knows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--agent-permission-mode", "yolo"])
    assert "--agent-permission-mode" in capsys.readouterr().err


# -- credentials ---------------------------------------------------------------------------


def test_the_api_address_is_always_the_operators_so_envfrom_cannot_redirect_the_token() -> None:
    assert env_of(build({"envFrom": [{"configMapRef": {"name": "x"}}]}))[contract.BASE_URL_ENV] == (
        contract.DEFAULT_API_URL
    )
    assert env_of(build(anthropic_base_url="http://stand-in:1"))[contract.BASE_URL_ENV] == (
        "http://stand-in:1"
    )


def test_no_variable_of_the_agent_holds_the_credential_and_every_credential_name_is_empty() -> None:
    pod = build({"envFrom": [{"secretRef": {"name": "team-env"}}]})
    env = env_of(pod)
    # An envFrom Secret holding ANTHROPIC_API_KEY must not log the agent in as someone else:
    # explicit env entries win over envFrom.
    assert all(env[name] == "" for name in contract.CREDENTIAL_ENV)
    assert env[contract.STAGED_CREDENTIAL] == "/var/run/headroom/credential/value"
    assert env[contract.STAGED_CREDENTIAL_TYPE] == "OAuthToken"
    # No secretKeyRef to the account's runtime Secret anywhere in the agent container.
    refs = [e for e in agent(pod)["env"] if "valueFrom" in e]
    assert not [r for r in refs if "headroom-account-" in json.dumps(r)]


def test_the_runtime_secret_is_mounted_in_the_credential_init_container_only() -> None:
    pod = build()
    volumes = volumes_of(pod)
    source = volumes["headroom-credential-source"]["secret"]
    assert source == {
        "secretName": "headroom-account-alice",
        "items": [{"key": "token", "path": "value"}],
        "defaultMode": 0o400,
    }
    assert volumes["headroom-credential"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}
    first, *_ = pod["spec"]["initContainers"]
    assert first["name"] == "credential" and first["command"] == ["headroom", "credential"]
    by_volume = {m["name"]: m for m in first["volumeMounts"]}
    assert set(by_volume) == {"headroom-credential-source", "headroom-credential"}
    assert by_volume["headroom-credential-source"]["readOnly"] is True
    # The agent mounts the staged copy (it must unlink it), never the Secret.
    agent_volumes = {m["name"] for m in agent(pod)["volumeMounts"]}
    assert "headroom-credential" in agent_volumes
    assert "headroom-credential-source" not in agent_volumes
    assert first["securityContext"] == agent(pod)["securityContext"]


def test_an_api_key_account_stages_its_own_key() -> None:
    attempt = replace(ATTEMPT, credential_type=CredentialType.API_KEY, credential_key="apiKey")
    pod = build(attempt=attempt)
    assert env_of(pod)[contract.STAGED_CREDENTIAL_TYPE] == "APIKey"
    items = volumes_of(pod)["headroom-credential-source"]["secret"]["items"]
    assert items == [{"key": "apiKey", "path": "value"}]


def test_a_credentials_file_account_mounts_the_runtime_secret() -> None:
    attempt = replace(
        ATTEMPT, credential_type=CredentialType.CREDENTIALS_FILE, credential_key="c.json"
    )
    pod = build(attempt=attempt)
    assert env_of(pod)[contract.CREDENTIALS_FILE] == f"{contract.CREDENTIALS_DIR}/c.json"
    assert volumes_of(pod)["credentials"]["secret"]["secretName"] == "headroom-account-alice"
    assert all(env_of(pod)[name] == "" for name in contract.CREDENTIAL_ENV)
    # Claude Code owns and rewrites that file: it stays mounted, and no init container runs.
    assert "initContainers" not in pod["spec"]


# -- env, envFrom, resources -------------------------------------------------------------


def test_user_env_comes_first_so_operator_names_win() -> None:
    spec = {
        "env": [
            {"name": "GIT_AUTHOR_NAME", "value": "bot"},
            {"name": "GH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "team"}, "prefix": "TEAM_"}],
    }
    container = agent(build(spec))
    names = [e["name"] for e in container["env"]]
    assert names[:2] == ["GIT_AUTHOR_NAME", "GH_TOKEN"]
    assert names.index(contract.SESSION_ID) > 1
    assert container["envFrom"] == spec["envFrom"]
    assert env_of(build(spec))[contract.SCRUB_ENV] == "GH_TOKEN"


def test_envfrom_secrets_are_mounted_for_the_scrubber_only_as_references() -> None:
    pod = build({"envFrom": [{"configMapRef": {"name": "c"}}, {"secretRef": {"name": "s"}}]})
    assert volumes_of(pod)["headroom-scrub-1"]["secret"] == {"secretName": "s", "optional": False}
    assert mounts_of(agent(pod))[f"{contract.SCRUB_MOUNT_DIR}/1"]["readOnly"] is True
    assert env_of(pod)[contract.SCRUB_DIR] == contract.SCRUB_MOUNT_DIR
    assert "headroom-scrub-0" not in volumes_of(pod)


def test_resources_default_from_the_operator_and_merge_per_key() -> None:
    assert agent(build())["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    spec = {"resources": {"requests": {"cpu": 2}, "limits": {"memory": "8Gi", "cpu": "4"}}}
    assert agent(build(spec))["resources"] == {
        "requests": {"cpu": "2", "memory": "512Mi"},
        "limits": {"memory": "8Gi", "cpu": "4"},
    }


# -- podTemplate ---------------------------------------------------------------------------


def test_pod_template_merges_under_what_the_operator_owns() -> None:
    template = {
        "metadata": {"labels": {"team": "a"}, "annotations": {"cost-center": "42"}},
        "spec": {
            "nodeSelector": {"pool": "agents"},
            "tolerations": [{"key": "agents", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
            "priorityClassName": "batch",
            "runtimeClassName": "gvisor",
            "imagePullSecrets": [{"name": "regcred"}],
            "securityContext": {"runAsUser": 2000, "fsGroup": 2000},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        },
    }
    pod = build({"podTemplate": template}, tolerations=({"key": "default", "operator": "Exists"},))
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["team"] == "a" and meta["labels"][contract.LABEL_SESSION_UID] == "u-1"
    assert meta["annotations"]["cost-center"] == "42"
    assert meta["annotations"][contract.ANN_ACCOUNT] == "alice"
    assert spec["nodeSelector"] == {"pool": "agents"}
    assert [t["key"] for t in spec["tolerations"]] == ["default", "agents"]
    assert spec["priorityClassName"] == "batch" and spec["runtimeClassName"] == "gvisor"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert spec["securityContext"]["runAsUser"] == 2000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert volumes_of(pod)["cache"] == {"name": "cache", "emptyDir": {}}
    assert "/cache" in mounts_of(agent(pod))
    # What the operator owns is untouched by any template.
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    assert agent(pod)["command"] == ["headroom", "agent"]
    assert mounts_of(agent(pod))[contract.WORKSPACE]["name"] == "workspace"


def test_template_labels_cannot_replace_the_labels_the_operator_selects_on() -> None:
    template = {"metadata": {"labels": {contract.LABEL_MANAGED: "someone"}}}
    assert build({"podTemplate": template})["metadata"]["labels"][contract.LABEL_MANAGED] == (
        contract.MANAGER
    )


def test_without_template_the_operator_node_selector_stays() -> None:
    assert build(node_selector={"n": "1"})["spec"]["nodeSelector"] == {"n": "1"}


# -- repositories --------------------------------------------------------------------------

REPOS = [
    {
        "url": "https://git.example.com/team/app.git",
        "ref": "main",
        "branch": "fix/flaky",
        "depth": 1,
        "credentialsSecretRef": {"name": "git-token"},
    },
    {"url": "git@github.com:team/lib.git", "path": "vendor/lib",
     "credentialsSecretRef": {"name": "deploy-key", "knownHostsKey": "hosts"}},
    {"url": "git://git.example.com/public"},
]  # fmt: skip


def test_repos_become_a_clone_init_container_with_credential_files() -> None:
    pod = build({"repos": REPOS})
    credential, init = pod["spec"]["initContainers"]
    assert credential["name"] == contract.CREDENTIAL_CONTAINER  # first: the clone needs none
    assert init["name"] == contract.CLONE_CONTAINER and init["command"] == ["headroom", "clone"]
    doc = json.loads({e["name"]: e["value"] for e in init["env"]}[contract.REPOS])
    # Relative paths: to the workspace and to the credentials mount the pod names.
    assert [r["path"] for r in doc] == ["app", "vendor/lib", "public"]
    assert doc[0]["credentials"] == {"kind": "token", "file": "0/secret", "knownHosts": None}
    assert doc[1]["credentials"]["kind"] == "ssh"
    assert doc[1]["credentials"]["knownHosts"] == "1/known_hosts"
    init_env = {e["name"]: e["value"] for e in init["env"]}
    assert init_env[contract.GIT_CREDENTIALS_ENV] == contract.GIT_CREDENTIALS_DIR
    assert doc[2]["credentials"] is None
    assert (doc[0]["ref"], doc[0]["branch"], doc[0]["depth"]) == ("main", "fix/flaky", 1)
    volumes = volumes_of(pod)
    assert volumes["headroom-git-0"]["secret"]["items"] == [{"key": "token", "path": "secret"}]
    assert volumes["headroom-git-1"]["secret"]["items"] == [
        {"key": "ssh-privatekey", "path": "secret"},
        {"key": "hosts", "path": "known_hosts"},
    ]
    # The agent container gets the same files, so the agent can push with them.
    assert f"{contract.GIT_CREDENTIALS_DIR}/0" in mounts_of(agent(pod))
    assert f"{contract.GIT_CREDENTIALS_DIR}/0" in mounts_of(init)
    assert contract.REPOS in env_of(pod)


def test_no_token_value_is_in_the_pod_only_secret_names() -> None:
    text = json.dumps(build({"repos": REPOS}))
    assert "git-token" in text and "x-access-token" not in text


def test_commits_get_an_identity_unless_env_gives_one() -> None:
    env = env_of(build({"repos": REPOS}))
    assert env["GIT_AUTHOR_NAME"] == "Headroom agent"
    mine = [{"name": "GIT_AUTHOR_NAME", "value": "Release bot"}]
    names = [e["name"] for e in agent(build({"repos": REPOS, "env": mine}))["env"]]
    assert names.count("GIT_AUTHOR_NAME") == 1 and "GIT_COMMITTER_NAME" in names
    assert "GIT_AUTHOR_NAME" not in env_of(build())


def test_a_later_attempt_does_not_clone_again() -> None:
    pod = build({"repos": REPOS}, attempt=replace(ATTEMPT, number=2, clone_repos=False))
    names = [i["name"] for i in pod["spec"]["initContainers"]]
    assert names == [contract.CREDENTIAL_CONTAINER]


def test_two_repos_on_one_default_path_are_refused_naming_the_field() -> None:
    repos = [{"url": "https://a.example/x/app.git"}, {"url": "https://b.example/y/app"}]
    with pytest.raises(SpecError, match=r"spec.repos\[1\].path"):
        build({"repos": repos})


def test_credentials_on_a_git_protocol_url_are_refused() -> None:
    with pytest.raises(SpecError, match=r"spec.repos\[0\].credentialsSecretRef"):
        build({"repos": [{"url": "git://h/x", "credentialsSecretRef": {"name": "s"}}]})


# -- Claude Code options -------------------------------------------------------------------


def test_claude_options_reach_the_runner_as_one_json_variable() -> None:
    claude = {
        **PASSED_THROUGH,
        "maxBudgetUSD": 5,
        "mcpServers": {"configMapKeyRef": {"name": "mcp", "key": "servers.json"}},
    }
    pod = build({"claude": claude}, attempt=replace(ATTEMPT, budget_left_usd=3.25))
    options = json.loads(env_of(pod)[contract.CLAUDE_OPTIONS])
    assert options == {
        **PASSED_THROUGH,
        "maxBudgetUSD": 3.25,  # what is left, not the session's whole budget
        "mcpConfigSecret": False,
    }
    assert env_of(pod)[contract.MCP_CONFIG] == f"{contract.MCP_DIR}/{contract.MCP_FILE}"
    volume = volumes_of(pod)["headroom-mcp"]["configMap"]
    assert volume == {"name": "mcp", "items": [{"key": "servers.json", "path": contract.MCP_FILE}]}


def test_an_mcp_config_from_a_secret_is_marked_for_scrubbing() -> None:
    claude = {"mcpServers": {"secretKeyRef": {"name": "mcp", "key": "k"}}}
    pod = build({"claude": claude})
    assert json.loads(env_of(pod)[contract.CLAUDE_OPTIONS])["mcpConfigSecret"] is True
    assert volumes_of(pod)["headroom-mcp"]["secret"]["secretName"] == "mcp"


def test_no_claude_options_no_variable() -> None:
    assert contract.CLAUDE_OPTIONS not in env_of(build())


# -- limits and workspace --------------------------------------------------------------------


def test_the_remaining_timeout_is_the_kubelet_deadline() -> None:
    assert (
        build(attempt=replace(ATTEMPT, deadline_seconds=600))["spec"]["activeDeadlineSeconds"]
        == 600
    )
    assert "activeDeadlineSeconds" not in build()["spec"]


def test_a_timeout_beyond_what_the_api_server_takes_is_capped() -> None:
    """spec.timeout 65162840h (found by tests/faults' fuzzing): the API server refused every
    pod with an activeDeadlineSeconds beyond int32."""
    pod = build(attempt=replace(ATTEMPT, deadline_seconds=234_586_224_060))
    assert pod["spec"]["activeDeadlineSeconds"] == 2**31 - 1


def test_the_workspace_claim_is_the_one_the_attempt_names() -> None:
    pod = build(attempt=replace(ATTEMPT, workspace_claim="earlier-workspace"))
    claim = volumes_of(pod)["workspace"]["persistentVolumeClaim"]["claimName"]
    assert claim == "earlier-workspace"


def test_operator_volume_and_env_names_are_the_contract_ones() -> None:
    pod = build(
        {"repos": REPOS[:1], "claude": {"mcpServers": {"secretKeyRef": {"name": "m", "key": "k"}}}}
    )
    for name in volumes_of(pod):
        assert name in contract.OPERATOR_VOLUMES or name.startswith(contract.OPERATOR_VOLUME_PREFIX)
    owned = {e["name"] for e in agent(pod)["env"]} - set(agent_pod.GIT_IDENTITY)
    assert all(
        n.startswith(contract.RESERVED_ENV_PREFIX)
        or n in contract.RESERVED_ENV
        or n == "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"
        for n in owned
    )
