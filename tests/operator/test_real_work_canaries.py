"""Canary secrets in every real-work input a session takes from Secrets: a repository's HTTPS
token and SSH key, a variable from a Secret (env valueFrom), a whole Secret (envFrom), and an
MCP configuration from a Secret. Against the real API server and the real operator process:
the agent pod names each Secret by reference only, and no canary appears in any object of
the namespace (pods' specs and metadata, sessions, accounts, Events), nor in the operator's
log, even after attempts whose termination messages repeat the token-shaped ones. Failures
name the place, never the text around a canary, so test output cannot leak one either.
"""

from __future__ import annotations

import json

import pytest
from tests.support.operator import Scene, in_seconds

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

# Token-shaped (the operator's scrubber knows the shape) and shapeless (only a reference
# keeps those out: the operator never reads these Secrets).
GIT_TOKEN = "ghp_CANARYgit0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nCANARYsshb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n"  # noqa: E501
ENV_VALUE = "canary-env-value-5d1c7e2b9a"
ENV_FROM_VALUE = "canary-envfrom-value-8e3f0a6c"
MCP_TOKEN = "sk-ant-api03-CANARYmcp-7b2d4f6a8c0e"
SHAPELESS = (ENV_VALUE, ENV_FROM_VALUE, "CANARYssh")
EVERY = (GIT_TOKEN, MCP_TOKEN, ENV_VALUE, ENV_FROM_VALUE, "CANARYssh", "CANARYgit", "CANARYmcp")


def _real_work(scene: Scene) -> None:
    scene.secret("git-token", {"token": GIT_TOKEN})
    scene.secret("git-ssh", {"ssh-privatekey": SSH_KEY})
    scene.secret("app-env", {"SENTRY_AUTH_TOKEN": ENV_VALUE})
    scene.secret("app-env-all", {"DB_PASSWORD": ENV_FROM_VALUE})
    server = {"type": "http", "url": "https://mcp.example.com",
              "headers": {"Authorization": f"Bearer {MCP_TOKEN}"}}  # fmt: skip
    mcp = {"mcpServers": {"issues": server}}
    scene.secret("mcp-config", {"mcp.json": json.dumps(mcp)})
    scene.session(
        "work",
        repos=[
            {"url": "https://git.example.com/team/app.git",
             "credentialsSecretRef": {"name": "git-token"}},
            {"url": "ssh://git@git.example.com/team/lib.git", "path": "lib",
             "credentialsSecretRef": {"name": "git-ssh"}},
        ],
        env=[{"name": "SENTRY_AUTH_TOKEN",
              "valueFrom": {"secretKeyRef": {"name": "app-env", "key": "SENTRY_AUTH_TOKEN"}}}],
        envFrom=[{"secretRef": {"name": "app-env-all"}}],
        claude={"mcpServers": {"secretKeyRef": {"name": "mcp-config", "key": "mcp.json"}}},
    )  # fmt: skip


def _references(pod: dict) -> set[str]:
    """The Secrets the pod names: in env, envFrom and volumes."""
    names: set[str] = set()
    spec = pod["spec"]
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for e in container.get("env") or []:
            ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            names |= {ref} if ref else set()
        for source in container.get("envFrom") or []:
            ref = (source.get("secretRef") or {}).get("name")
            names |= {ref} if ref else set()
    for volume in spec.get("volumes") or []:
        names |= {volume["secret"]["secretName"]} if volume.get("secret") else set()
    return names


def _leaks(places: dict[str, str]) -> list[str]:
    return [f"{canary[:12]}… in {place}" for place, text in places.items()
            for canary in EVERY if canary in text]  # fmt: skip


def test_real_work_secrets_reach_the_pod_by_reference_only(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    _real_work(scene)
    first = scene.wait_running("work", attempt=1)
    pod = scene.core.api_client.sanitize_for_serialization(scene.pod(first["podName"]))
    assert {"git-token", "git-ssh", "app-env", "app-env-all", "mcp-config"} <= _references(pod)
    # The agent printed what it was given; the runner's scrub is bypassed on purpose (the
    # termination message is written by the test): the operator's own scrub must hold.
    scene.finish_pod(
        first["podName"], Outcome.FAILED, detail=f"push failed for {GIT_TOKEN}",
        evidence=f"Authorization: Bearer {MCP_TOKEN}",
    )  # fmt: skip
    second = scene.wait_running("work", attempt=2, timeout=60)
    scene.finish_pod(
        second["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600),
        evidence=f"limit; token {GIT_TOKEN}",
    )  # fmt: skip
    scene.wait_running("work", attempt=3, timeout=60)

    api = scene.core.api_client
    pods = [
        api.sanitize_for_serialization(p) for p in scene.core.list_namespaced_pod(scene.ns).items
    ]
    places = {
        "pod specs": json.dumps([p["spec"] for p in pods]),
        "pod metadata (labels, annotations)": json.dumps([p["metadata"] for p in pods]),
        "sessions": json.dumps(scene.sessions()),
        "accounts": json.dumps([scene.get("claudeaccounts", n) for n in ("alice", "bob")]),
        "events": json.dumps([api.sanitize_for_serialization(e) for e in scene.events()]),
        "operator log": operator.log_text(),
    }
    assert _leaks(places) == []
    # The scrub was needed: the token-shaped canaries reached the operator as input.
    assert "[redacted]" in places["events"] and "[redacted]" in places["accounts"]
